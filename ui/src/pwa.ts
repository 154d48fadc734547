// Installable app on phones: the service worker (`public/sw.js`) is
// registered only where it can work and makes sense.
//
// Browsers allow service workers (and "Add to Home screen" as an app) only in
// a secure context: https (a cloudflared tunnel, Tailscale Serve) or
// localhost. Plain http over the LAN or bore is not one, so there the page
// just works online. Inside the desktop app there is nothing to install and
// the hub is always local, so it is never registered there.
import { isDesktopApp } from "./desktop";

export const SERVICE_WORKER_URL = "/sw.js";

/** What the decision depends on (a `window` in the app; fakes in tests). */
export interface PwaEnvironment {
  isSecureContext: boolean;
  /** `"serviceWorker" in navigator` */
  hasServiceWorker: boolean;
  desktopApp: boolean;
  /** `import.meta.env.PROD`: the dev server serves modules, not the built shell. */
  production: boolean;
}

export function shouldRegisterServiceWorker(env: PwaEnvironment): boolean {
  return env.production && env.isSecureContext && env.hasServiceWorker && !env.desktopApp;
}

export function currentPwaEnvironment(): PwaEnvironment {
  const w = typeof window === "undefined" ? undefined : window;
  return {
    isSecureContext: w?.isSecureContext === true,
    hasServiceWorker: typeof navigator !== "undefined" && "serviceWorker" in navigator,
    desktopApp: isDesktopApp(),
    production: import.meta.env.PROD === true,
  };
}

/** Registers the service worker after load, if `shouldRegisterServiceWorker`; returns whether it tried. */
export function registerServiceWorker(env: PwaEnvironment = currentPwaEnvironment()): boolean {
  if (!shouldRegisterServiceWorker(env)) return false;
  const register = () => {
    navigator.serviceWorker.register(SERVICE_WORKER_URL, { scope: "/" }).catch(() => {
      // Not fatal: the page works without it (online only).
    });
  };
  if (document.readyState === "complete") register();
  else window.addEventListener("load", register, { once: true });
  return true;
}
