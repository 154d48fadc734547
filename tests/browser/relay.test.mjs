// End-to-end through a real relay: pair a phone by its QR code and approve from
// it, with the phone in a network namespace that reaches only the bore relay.
//
// Same steps as pair.test.mjs, but two browsers: the owner's Chromium runs
// where this script runs (the desktop's namespace, next to the hub's local
// listener), the phone's through HAPI_TEST_PHONE_CHROMIUM, a wrapper that
// starts Chromium inside the phone's namespace. The Rust side
// (tests/tests/relay.rs) builds the namespaces, decodes the QR image and
// checks the outcome in the hub.
// Inputs (all required):
//   HAPI_TEST_URL            the hub's local URL (owner side, desktop namespace)
//   HAPI_TEST_TOKEN          owner token
//   HAPI_TEST_SESSION_ID     session with a pending Bash approval
//   HAPI_TEST_HANDSHAKE      directory for qr.png (written here) and url.txt (read)
//   HAPI_TEST_PUBLIC_URL     the relay's public URL of the hub (http://RELAY:PORT)
//   HAPI_TEST_PHONE_CHROMIUM executable that runs Chromium in the phone's namespace
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { launchBrowser, screenshot, requiredEnv, timeout } from "./harness.mjs";
import { pairAndApprove, showPairingQr, waitForFile } from "./pairing.mjs";

test("pair a phone through the bore relay and approve from it", { timeout: timeout * 6 }, async () => {
  const env = requiredEnv("relay.test.mjs", [
    "HAPI_TEST_URL",
    "HAPI_TEST_TOKEN",
    "HAPI_TEST_SESSION_ID",
    "HAPI_TEST_HANDSHAKE",
    "HAPI_TEST_PUBLIC_URL",
    "HAPI_TEST_PHONE_CHROMIUM",
  ]);
  const url = env.HAPI_TEST_URL.replace(/\/+$/, "");
  const ownerBrowser = await launchBrowser();
  let phoneBrowser;
  let desktop;
  try {
    // Owner, at desktop size, on the hub's local listener: the QR code.
    desktop = (
      await showPairingQr(ownerBrowser, {
        url,
        token: env.HAPI_TEST_TOKEN,
        handshake: env.HAPI_TEST_HANDSHAKE,
        shot: "relay-pair-dialog.png",
      })
    ).page;

    // The phone, in its own namespace, opens what the QR code says: the
    // relay's address, the only one it can reach.
    const pairUrl = await waitForFile(path.join(env.HAPI_TEST_HANDSHAKE, "url.txt"));
    phoneBrowser = await launchBrowser(env.HAPI_TEST_PHONE_CHROMIUM);
    await pairAndApprove(phoneBrowser, {
      pairUrl,
      deviceName: "Relay phone",
      sessionId: env.HAPI_TEST_SESSION_ID,
      shot: "relay-phone-approval.png",
      failureShot: "relay-phone-failure.png",
      onOpened: (page) =>
        assert.equal(new URL(page.url()).origin, new URL(env.HAPI_TEST_PUBLIC_URL).origin, "the phone is on the relay's address"),
    });

    // The owner's dialog sees the phone join.
    await desktop.getByTestId("pairing-done").waitFor({ state: "visible" });
  } catch (err) {
    await screenshot(desktop, "relay-desktop-failure.png");
    throw err;
  } finally {
    await phoneBrowser?.close();
    await ownerBrowser.close();
  }
});
