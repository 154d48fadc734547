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
import fs from "node:fs";
import path from "node:path";
import { launchBrowser, screenshot, requiredEnv, timeout } from "./harness.mjs";

async function waitForFile(file) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (fs.existsSync(file)) {
      const text = fs.readFileSync(file, "utf8").trim();
      if (text) return text;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${file}`);
}

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
  let phone;
  try {
    // Owner, at desktop size, on the hub's local listener: the QR code.
    const owner = await ownerBrowser.newContext({ viewport: { width: 1100, height: 760 } });
    owner.setDefaultTimeout(timeout);
    desktop = await owner.newPage();
    await desktop.goto(`${url}/#token=${encodeURIComponent(env.HAPI_TEST_TOKEN)}`);
    await desktop.locator('[data-testid="connection-status"]').waitFor({ state: "visible" });
    await desktop.evaluate(() => {
      window.location.hash = "#/pair-phone";
    });
    const qr = desktop.locator('[data-testid="pairing-qr"] img');
    await qr.waitFor({ state: "visible" });
    await qr.screenshot({ path: path.join(env.HAPI_TEST_HANDSHAKE, "qr.png") });
    await screenshot(desktop, "relay-pair-dialog.png");

    // The phone, in its own namespace, opens what the QR code says: the
    // relay's address, the only one it can reach.
    const pairUrl = await waitForFile(path.join(env.HAPI_TEST_HANDSHAKE, "url.txt"));
    phoneBrowser = await launchBrowser(env.HAPI_TEST_PHONE_CHROMIUM);
    const device = await phoneBrowser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    device.setDefaultTimeout(timeout);
    phone = await device.newPage();
    await phone.goto(pairUrl);
    assert.equal(new URL(phone.url()).origin, new URL(env.HAPI_TEST_PUBLIC_URL).origin, "the phone is on the relay's address");
    await phone.getByTestId("pair-device-name").fill("Relay phone");
    await phone.getByTestId("pair-submit").click();
    // Paired: the secret leaves the address bar, the phone lists the session.
    const item = phone.locator(`[data-testid="session-item"][data-session-id="${env.HAPI_TEST_SESSION_ID}"]`);
    await item.waitFor({ state: "visible" });
    assert.ok(!phone.url().includes("/pair/"), `the secret must leave the address bar; at ${phone.url()}`);
    await item.click();
    const card = phone.locator('[data-testid="approval-card"][data-state="pending"]').first();
    await card.waitFor({ state: "visible" });
    await screenshot(phone, "relay-phone-approval.png");
    await card.getByTestId("approval-allow-once").click();
    await phone.locator('[data-testid="approval-card"][data-state="pending"]').waitFor({ state: "detached" });

    // The owner's dialog sees the phone join.
    await desktop.getByTestId("pairing-done").waitFor({ state: "visible" });
  } catch (err) {
    await screenshot(desktop, "relay-desktop-failure.png");
    await screenshot(phone, "relay-phone-failure.png");
    throw err;
  } finally {
    await phoneBrowser?.close();
    await ownerBrowser.close();
  }
});
