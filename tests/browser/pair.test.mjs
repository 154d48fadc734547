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

test("pair a phone from the QR code and approve from it", { timeout: timeout * 6 }, async () => {
  const env = requiredEnv("pair.test.mjs", ["HAPI_TEST_URL", "HAPI_TEST_TOKEN", "HAPI_TEST_SESSION_ID", "HAPI_TEST_HANDSHAKE"]);
  const url = env.HAPI_TEST_URL.replace(/\/+$/, "");
  const browser = await launchBrowser();
  let desktop;
  let phone;
  try {
    // Owner, at desktop size: the pairing dialog shows the QR code.
    const owner = await browser.newContext({ viewport: { width: 1100, height: 760 } });
    owner.setDefaultTimeout(timeout);
    desktop = await owner.newPage();
    await desktop.goto(`${url}/#token=${encodeURIComponent(env.HAPI_TEST_TOKEN)}`);
    await desktop.locator('[data-testid="connection-status"]').waitFor({ state: "visible" });
    await desktop.evaluate(() => {
      window.location.hash = "#/pair-phone";
    });
    const qr = desktop.locator('[data-testid="pairing-qr"] img');
    await qr.waitFor({ state: "visible" });
    const code = (await desktop.getByTestId("pairing-code").innerText()).trim();
    assert.match(code, /^[0-9A-Z]{4}-?[0-9A-Z]{4,}$/, `a typed code of 8+ characters; got ${code}`);
    await qr.screenshot({ path: path.join(env.HAPI_TEST_HANDSHAKE, "qr.png") });
    await screenshot(desktop, "pair-dialog.png");

    // The harness decodes the image; the phone opens what the QR code says.
    const pairUrl = await waitForFile(path.join(env.HAPI_TEST_HANDSHAKE, "url.txt"));
    const device = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    device.setDefaultTimeout(timeout);
    phone = await device.newPage();
    await phone.goto(pairUrl);
    await phone.getByTestId("pair-device-name").fill("Test phone");
    await phone.getByTestId("pair-submit").click();
    // Paired: the secret leaves the address bar, the phone lists the session.
    const item = phone.locator(`[data-testid="session-item"][data-session-id="${env.HAPI_TEST_SESSION_ID}"]`);
    await item.waitFor({ state: "visible" });
    assert.ok(!phone.url().includes("/pair/"), `the secret must leave the address bar; at ${phone.url()}`);
    await item.click();
    const card = phone.locator('[data-testid="approval-card"][data-state="pending"]').first();
    await card.waitFor({ state: "visible" });
    await screenshot(phone, "pair-phone-approval.png");
    await card.getByTestId("approval-allow-once").click();
    await phone.locator('[data-testid="approval-card"][data-state="pending"]').waitFor({ state: "detached" });

    // The owner's dialog sees the phone join.
    await desktop.getByTestId("pairing-done").waitFor({ state: "visible" });
  } catch (err) {
    await screenshot(desktop, "pair-desktop-failure.png");
    await screenshot(phone, "pair-phone-failure.png");
    throw err;
  } finally {
    await browser.close();
  }
});
