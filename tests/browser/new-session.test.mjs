// End-to-end: start a session on a machine from a phone-sized browser, in a
// directory that does not exist yet, approving its creation on the way.
//
// Run by the Rust harness (tests/tests/runner/browser.rs) as
// `node --test new-session.test.mjs` after it has started the hub and a runner.
// Inputs (all required):
//   HAPI_TEST_URL     hub base URL
//   HAPI_TEST_TOKEN   owner token
//   HAPI_TEST_CWD     an absolute directory that does not exist yet, inside the runner's roots
// Optional: HAPI_TEST_ARTIFACTS, HAPI_TEST_TIMEOUT_MS, HAPI_TEST_CHROMIUM (as in approve.test.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { requiredEnv, screenshot, timeout, withPhonePage } from "./harness.mjs";

test("start a session on a machine, approving its new directory", { timeout: timeout * 4 }, async () => {
  const env = requiredEnv("new-session.test.mjs", ["HAPI_TEST_URL", "HAPI_TEST_TOKEN", "HAPI_TEST_CWD"]);
  const url = env.HAPI_TEST_URL.replace(/\/+$/, "");
  const token = env.HAPI_TEST_TOKEN;
  const cwd = env.HAPI_TEST_CWD;
  await withPhonePage("new-session", async (page) => {
    await page.goto(`${url}/#token=${encodeURIComponent(token)}`);

    // 1. The machine is listed online; open "New session" on it.
    const machine = page.locator('[data-testid="machine-item"][data-state="online"]').first();
    await machine.waitFor({ state: "visible" });
    await machine.getByTestId("new-session").click();
    await page.getByTestId("new-session-cwd").fill(cwd);
    await page.getByTestId("new-session-prompt").fill("do it");
    await page.getByTestId("new-session-start").click();

    // 2. The directory does not exist: the machine asks before creating it.
    const request = page.getByTestId("machine-approval").first();
    await request.waitFor({ state: "visible" });
    assert.match(await request.innerText(), new RegExp(cwd.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    await screenshot(page, "new-session-approval.png");
    await request.getByTestId("machine-approval-allow").click();

    // 3. The new session opens, and its agent is at work (it asks for a tool).
    await page.waitForFunction(() => location.hash.startsWith("#/session/"), null, { timeout });
    await page.locator('[data-testid="approval-card"][data-state="pending"]').first().waitFor({ state: "visible" });
    await screenshot(page, "new-session.png");
  });
});
