// The steps of pairing a phone, shared by pair.test.mjs (LAN listener) and
// relay.test.mjs (through a bore relay): the owner's dialog shows the QR code,
// the Rust harness decodes the image and hands back the URL it holds, the
// phone opens it, pairs, and approves the pending request.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { screenshot, timeout } from "./harness.mjs";

/** Waits for the harness to write `file` (non-empty); returns its text. */
export async function waitForFile(file) {
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

/**
 * Signs the owner's page in at desktop size, opens the pairing dialog and
 * saves its QR code as `handshake/qr.png`. Returns the page and the typed code.
 */
export async function showPairingQr(browser, { url, token, handshake, shot }) {
  const owner = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  owner.setDefaultTimeout(timeout);
  const page = await owner.newPage();
  await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
  await page.locator('[data-testid="connection-status"]').waitFor({ state: "visible" });
  await page.evaluate(() => {
    window.location.hash = "#/pair-phone";
  });
  const qr = page.locator('[data-testid="pairing-qr"] img');
  await qr.waitFor({ state: "visible" });
  const code = (await page.getByTestId("pairing-code").innerText()).trim();
  await qr.screenshot({ path: path.join(handshake, "qr.png") });
  await screenshot(page, shot);
  return { page, code };
}

/**
 * Opens the decoded pairing URL on a phone-sized page, pairs as `deviceName`,
 * then approves the session's pending request. Returns the phone's page.
 * `onOpened(page)` runs after the URL is open, before pairing; on a failure
 * the page is saved as `failureShot`.
 */
export async function pairAndApprove(browser, { pairUrl, deviceName, sessionId, shot, failureShot, onOpened }) {
  const device = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  device.setDefaultTimeout(timeout);
  const phone = await device.newPage();
  try {
    await pairAndApproveOn(phone, { pairUrl, deviceName, sessionId, shot, onOpened });
  } catch (err) {
    await screenshot(phone, failureShot);
    throw err;
  }
  return phone;
}

async function pairAndApproveOn(phone, { pairUrl, deviceName, sessionId, shot, onOpened }) {
  await phone.goto(pairUrl);
  if (onOpened) await onOpened(phone);
  await phone.getByTestId("pair-device-name").fill(deviceName);
  await phone.getByTestId("pair-submit").click();
  // Paired: the secret leaves the address bar, the phone lists the session.
  const item = phone.locator(`[data-testid="session-item"][data-session-id="${sessionId}"]`);
  await item.waitFor({ state: "visible" });
  assert.ok(!phone.url().includes("/pair/"), `the secret must leave the address bar; at ${phone.url()}`);
  await item.click();
  const card = phone.locator('[data-testid="approval-card"][data-state="pending"]').first();
  await card.waitFor({ state: "visible" });
  await screenshot(phone, shot);
  await card.getByTestId("approval-allow-once").click();
  await phone.locator('[data-testid="approval-card"][data-state="pending"]').waitFor({ state: "detached" });
}
