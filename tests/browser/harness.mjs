// What every browser test shares: its inputs from the Rust harness, Debian's
// Chromium in a phone-sized page, screenshots, and the page's console on failure.
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

/** Per-step timeout (HAPI_TEST_TIMEOUT_MS, default 60 s). */
export const timeout = Number(process.env.HAPI_TEST_TIMEOUT_MS || 60_000);
const artifacts = process.env.HAPI_TEST_ARTIFACTS || "";

/**
 * The named environment variables, which the Rust harness sets after starting
 * what the test needs. Missing ones fail the test: it must never pass unrun.
 */
export function requiredEnv(file, names) {
  const missing = names.filter((n) => !process.env[n]);
  if (missing.length) {
    throw new Error(
      `${file} needs ${missing.join(", ")} in the environment (set by the Rust e2e harness). ` +
        "Refusing to skip: this test must not pass without running.",
    );
  }
  return Object.fromEntries(names.map((n) => [n, process.env[n]]));
}

/**
 * Runs `body(page)` in a fresh 390×844 touch page of headless Chromium
 * (HAPI_TEST_CHROMIUM, default /usr/bin/chromium); on failure saves
 * `<name>-failure.png` and prints the page's console.
 */
export async function withPhonePage(name, body) {
  const browser = await launchBrowser();
  let page;
  const log = [];
  try {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    context.setDefaultTimeout(timeout);
    page = await context.newPage();
    page.on("console", (m) => log.push(`console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
    await body(page);
  } catch (err) {
    await screenshot(page, `${name}-failure.png`);
    if (log.length) console.error(log.join("\n"));
    throw err;
  } finally {
    await browser.close();
  }
}

/**
 * Headless Debian Chromium (HAPI_TEST_CHROMIUM, default /usr/bin/chromium), or
 * `executablePath`: e.g. a wrapper script that runs Chromium in another network
 * namespace (`exec ip netns exec NS chromium "$@"`; playwright drives Chromium
 * over inherited pipes, which `ip netns exec` passes on).
 */
export function launchBrowser(executablePath = process.env.HAPI_TEST_CHROMIUM || "/usr/bin/chromium") {
  return chromium.launch({
    executablePath,
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
}

/** Saves a screenshot to HAPI_TEST_ARTIFACTS, if set. */
export async function screenshot(page, name) {
  if (!artifacts || !page) return;
  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, name) }).catch(() => {});
}
