// Owner token handling. The token arrives in the URL fragment (`#token=...`),
// which browsers never send to servers; we move it to localStorage and strip
// it from the address bar right away.
//
// Inside the desktop app the token is injected as `window.__HAPI_DESKTOP__`
// (see desktop.ts): it wins over everything else and is never written to
// storage; neither is the event cursor (the app cannot tell us when its token
// changes, and a fresh page simply starts `after=latest` with a snapshot).
import { desktopToken } from "./desktop";

const STORAGE_KEY = "hapi.token";
const CURSOR_KEY = "hapi.eventCursor";

/** Reads `token` from a fragment like `#token=abc` or `#/x?token=abc&y=1`. */
export function tokenFromFragment(hash: string): string | null {
  const raw = hash.startsWith("#") ? hash.slice(1) : hash;
  const query = raw.includes("?") ? raw.slice(raw.indexOf("?") + 1) : raw;
  const value = new URLSearchParams(query).get("token");
  return value && value.trim() ? value.trim() : null;
}

/** The fragment without its token: `#/session/x?token=t` → `#/session/x`. */
export function fragmentWithoutToken(hash: string): string {
  const raw = hash.startsWith("#") ? hash.slice(1) : hash;
  const q = raw.indexOf("?");
  const route = q >= 0 ? raw.slice(0, q) : raw.includes("=") ? "" : raw;
  const params = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : raw.includes("=") ? raw : "");
  params.delete("token");
  const rest = params.toString();
  const out = route + (rest ? `?${rest}` : "");
  return out ? `#${out}` : "";
}

/**
 * Takes a token from the fragment (if any), persists it, and cleans the URL.
 * In the desktop app the fragment's token is only removed: the app's own
 * token is used, and null is returned.
 */
export function adoptTokenFromLocation(): string | null {
  const token = tokenFromFragment(window.location.hash);
  if (!token) return null;
  const url = window.location.pathname + window.location.search + fragmentWithoutToken(window.location.hash);
  window.history.replaceState(null, "", url);
  if (desktopToken()) return null;
  storeToken(token);
  return token;
}

/** The token to start with: the desktop app's, else the stored one. */
export function initialToken(): string | null {
  return desktopToken() ?? loadToken();
}

export function loadToken(): string | null {
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string): void {
  if (desktopToken()) return; // the desktop app's token is never persisted
  try {
    if (window.localStorage.getItem(STORAGE_KEY) !== token) window.localStorage.removeItem(CURSOR_KEY);
    window.localStorage.setItem(STORAGE_KEY, token);
  } catch {
    // Private mode without storage: the token lives for this page only.
  }
}

export function clearToken(): void {
  try {
    window.localStorage.removeItem(STORAGE_KEY);
    window.localStorage.removeItem(CURSOR_KEY);
  } catch {
    // ignore
  }
}

/**
 * Last processed global event seq, kept across page loads so a reload does
 * not replay the hub's whole event log (a connection without `after=` starts
 * from the beginning). Tied to the token: a new token starts over. Not kept
 * in the desktop app (memory only there).
 */
export function loadEventCursor(): number | null {
  if (desktopToken()) return null;
  try {
    const v = Number(window.localStorage.getItem(CURSOR_KEY));
    return Number.isSafeInteger(v) && v > 0 ? v : null;
  } catch {
    return null;
  }
}

export function storeEventCursor(seq: number): void {
  if (desktopToken()) return;
  try {
    window.localStorage.setItem(CURSOR_KEY, String(seq));
  } catch {
    // ignore
  }
}
