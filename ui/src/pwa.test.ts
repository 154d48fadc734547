import { describe, expect, it } from "vitest";
import { shouldRegisterServiceWorker, type PwaEnvironment } from "./pwa";

const ok: PwaEnvironment = { isSecureContext: true, hasServiceWorker: true, desktopApp: false, production: true };

describe("service worker registration guard", () => {
  it("registers in a secure context (https tunnel, Tailscale Serve, localhost) in a browser", () => {
    expect(shouldRegisterServiceWorker(ok)).toBe(true);
  });

  it("never over plain http (LAN, bore), never in the desktop app, never without support or in dev", () => {
    expect(shouldRegisterServiceWorker({ ...ok, isSecureContext: false })).toBe(false);
    expect(shouldRegisterServiceWorker({ ...ok, desktopApp: true })).toBe(false);
    expect(shouldRegisterServiceWorker({ ...ok, hasServiceWorker: false })).toBe(false);
    expect(shouldRegisterServiceWorker({ ...ok, production: false })).toBe(false);
  });
});
