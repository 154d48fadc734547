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
import { requiredEnv, screenshot, timeout, withPhonePage } from "./harness.mjs";

const FINAL_TEXT = "Done: wrote hello to out.txt.";

test("approve a pending Bash call from the phone UI", { timeout: timeout * 6 }, async () => {
  const env = requiredEnv("approve.test.mjs", ["HAPI_TEST_URL", "HAPI_TEST_TOKEN", "HAPI_TEST_SESSION_ID"]);
  const url = env.HAPI_TEST_URL.replace(/\/+$/, "");
  const token = env.HAPI_TEST_TOKEN;
  const sessionId = env.HAPI_TEST_SESSION_ID;
  await withPhonePage("approve", async (page) => {
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
  });
});
