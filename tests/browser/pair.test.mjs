// End-to-end: pair a phone by its QR code and approve from it.
//
// The desktop page (owner) opens the pairing dialog and saves the QR code as a
// PNG; the Rust harness decodes that image (zbarimg) and writes the URL it
// holds to $HAPI_TEST_HANDSHAKE/url.txt; a phone page then opens that URL,
// pairs, finds the session and approves its pending request. The desktop page
// stays open meanwhile: closing the dialog withdraws the offer.
// Inputs (all required):
//   HAPI_TEST_URL         the hub's local URL (owner side)
//   HAPI_TEST_TOKEN       owner token
//   HAPI_TEST_SESSION_ID  session with a pending Bash approval
//   HAPI_TEST_HANDSHAKE   directory for qr.png (written here) and url.txt (read)
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { launchBrowser, screenshot, requiredEnv, timeout } from "./harness.mjs";
import { pairAndApprove, showPairingQr, waitForFile } from "./pairing.mjs";

test("pair a phone from the QR code and approve from it", { timeout: timeout * 6 }, async () => {
  const env = requiredEnv("pair.test.mjs", ["HAPI_TEST_URL", "HAPI_TEST_TOKEN", "HAPI_TEST_SESSION_ID", "HAPI_TEST_HANDSHAKE"]);
  const url = env.HAPI_TEST_URL.replace(/\/+$/, "");
  const browser = await launchBrowser();
  let desktop;
  try {
    // Owner, at desktop size: the pairing dialog shows the QR code.
    const shown = await showPairingQr(browser, {
      url,
      token: env.HAPI_TEST_TOKEN,
      handshake: env.HAPI_TEST_HANDSHAKE,
      shot: "pair-dialog.png",
    });
    desktop = shown.page;
    assert.match(shown.code, /^[0-9A-Z]{4}-?[0-9A-Z]{4,}$/, `a typed code of 8+ characters; got ${shown.code}`);

    // The harness decodes the image; the phone opens what the QR code says.
    const pairUrl = await waitForFile(path.join(env.HAPI_TEST_HANDSHAKE, "url.txt"));
    await pairAndApprove(browser, {
      pairUrl,
      deviceName: "Test phone",
      sessionId: env.HAPI_TEST_SESSION_ID,
      shot: "pair-phone-approval.png",
      failureShot: "pair-phone-failure.png",
    });

    // The owner's dialog sees the phone join.
    await desktop.getByTestId("pairing-done").waitFor({ state: "visible" });
  } catch (err) {
    await screenshot(desktop, "pair-desktop-failure.png");
    throw err;
  } finally {
    await browser.close();
  }
});
