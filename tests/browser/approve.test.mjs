// End-to-end: approve a pending Bash tool call from a phone-sized browser.
//
// Run by the Rust test harness as `node --test tests/browser/` after it has
// started the hub, a fake model server and Claude Code. Inputs (all required):
//   HAPI_TEST_URL         hub base URL, e.g. http://127.0.0.1:40123
//   HAPI_TEST_TOKEN       owner token
//   HAPI_TEST_SESSION_ID  session with a pending Bash approval that writes a file
// Optional:
//   HAPI_TEST_ARTIFACTS   directory for approve.png (and a failure screenshot)
//   HAPI_TEST_TIMEOUT_MS  per-step timeout (default 60000)
//   HAPI_TEST_CHROMIUM    browser binary (default /usr/bin/chromium)
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const FINAL_TEXT = "Done: wrote hello to out.txt.";

function requiredEnv() {
  const names = ["HAPI_TEST_URL", "HAPI_TEST_TOKEN", "HAPI_TEST_SESSION_ID"];
  const missing = names.filter((n) => !process.env[n]);
  if (missing.length) {
    throw new Error(
      `approve.test.mjs needs ${missing.join(", ")} in the environment ` +
        "(the Rust e2e harness sets them after starting the hub, the fake model and Claude Code). " +
        "Refusing to skip: this test must not pass without running.",
    );
  }
  return {
    url: process.env.HAPI_TEST_URL.replace(/\/+$/, ""),
    token: process.env.HAPI_TEST_TOKEN,
    sessionId: process.env.HAPI_TEST_SESSION_ID,
  };
}

const timeout = Number(process.env.HAPI_TEST_TIMEOUT_MS || 60_000);
const artifacts = process.env.HAPI_TEST_ARTIFACTS || "";

async function screenshot(page, name) {
  if (!artifacts || !page) return;
  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, name), fullPage: false }).catch(() => {});
}

test("approve a pending Bash call from the phone UI", { timeout: timeout * 6 }, async () => {
  const { url, token, sessionId } = requiredEnv();
  const browser = await chromium.launch({
    executablePath: process.env.HAPI_TEST_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  let page;
  const log = [];
  try {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    context.setDefaultTimeout(timeout);
    page = await context.newPage();
    page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));

    // 1. Sign in through the fragment; the app must strip it from the URL.
    await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
    const item = page.locator(`[data-testid="session-item"][data-session-id="${sessionId}"]`);
    await item.waitFor({ state: "visible" });
    assert.ok(!page.url().includes(token), "token must be removed from the address bar");

    // 2. Open the session from the list.
    await item.click();

    // 3. The approval card shows up with its actions.
    const card = page.locator('[data-testid="approval-card"][data-state="pending"]').first();
    await card.waitFor({ state: "visible" });
    const approvalId = await card.getAttribute("data-approval-id");
    assert.ok(approvalId, "approval card carries data-approval-id");
    const cardText = await card.innerText();
    assert.match(cardText, /Bash/, `approval card names the tool; got: ${cardText}`);

    // Tool calls already completed before the decision do not count.
    const completedBefore = await page
      .locator('[data-testid="tool-call"][data-status="completed"]')
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-tool-call-id")));

    // 4. Allow once.
    await card.getByTestId("approval-allow-once").click();

    // The card leaves the pending state (decided card, then gone).
    await page.waitForFunction(
      (id) => {
        const el = document.querySelector(`[data-testid="approval-card"][data-approval-id="${CSS.escape(id)}"]`);
        return !el || el.getAttribute("data-state") !== "pending";
      },
      approvalId,
      { timeout },
    );

    // 5. A new tool call completes and shows its result.
    await page.waitForFunction(
      (before) =>
        [...document.querySelectorAll('[data-testid="tool-call"][data-status="completed"]')].some(
          (el) => !before.includes(el.getAttribute("data-tool-call-id")) && el.querySelector('[data-testid="tool-result"]'),
        ),
      completedBefore,
      { timeout },
    );

    // 6. The agent's final text arrives.
    await page.getByTestId("agent-text").filter({ hasText: FINAL_TEXT }).first().waitFor({ state: "visible" });

    await screenshot(page, "approve.png");
  } catch (err) {
    await screenshot(page, "approve-failure.png");
    if (log.length) console.error(log.join("\n"));
    throw err;
  } finally {
    await browser.close();
  }
});
