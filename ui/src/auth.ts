// Token handling. The owner token arrives in the URL fragment (`#token=...`),
// which browsers never send to servers; we move it to localStorage and strip
// it from the address bar right away.
//
// A paired phone has no owner token but a *device token* of its own (from
// `POST /pair`, see pairing.ts), kept under a separate key. A browser holds
// one or the other: storing one removes the other.
//
// Inside the desktop app the token is injected as `window.__HAPI_DESKTOP__`
// (see desktop.ts): it wins over everything else and is never written to
// storage; neither is the event cursor (the app cannot tell us when its token
// changes, and a fresh page simply starts `after=latest` with a snapshot).
import { desktopToken } from "./desktop";

const STORAGE_KEY = "hapi.token";
const DEVICE_KEY = "hapi.deviceToken";
const CURSOR_KEY = "hapi.eventCursor";

/**
 * Whose token the page runs with: the owner's (typed or from `#token=`), the
 * owner's as injected by the desktop app, or a paired phone's device token.
 */
export type CredentialKind = "owner" | "desktop" | "device";

export interface Credential {
  kind: CredentialKind;
  token: string;
}

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
  return initialCredential()?.token ?? null;
}

/** The credential to start with: the desktop app's, else a stored owner token, else a stored device token. */
export function initialCredential(): Credential | null {
  const desktop = desktopToken();
  if (desktop) return { kind: "desktop", token: desktop };
  const owner = loadToken();
  if (owner) return { kind: "owner", token: owner };
  const device = loadDeviceToken();
  if (device) return { kind: "device", token: device };
  return null;
}

/** Owner-only features (phone access, devices, `/api/hub`) are hidden from a paired device. */
export function isOwner(credential: Credential | null): boolean {
  return credential !== null && credential.kind !== "device";
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
    window.localStorage.removeItem(DEVICE_KEY);
  } catch {
    // Private mode without storage: the token lives for this page only.
  }
}

export function loadDeviceToken(): string | null {
  try {
    const t = window.localStorage.getItem(DEVICE_KEY);
    return t && t.trim() ? t : null;
  } catch {
    return null;
  }
}

/**
 * Keeps a paired device's token (and drops an owner token, so the page runs
 * as this device from now on). Never inside the desktop app.
 */
export function storeDeviceToken(token: string): void {
  if (desktopToken()) return;
  try {
    if (window.localStorage.getItem(DEVICE_KEY) !== token) window.localStorage.removeItem(CURSOR_KEY);
    window.localStorage.setItem(DEVICE_KEY, token);
    window.localStorage.removeItem(STORAGE_KEY);
  } catch {
    // No storage: the token lives for this page only.
  }
}

/** Forgets the device token (the hub answered 401: the device was revoked). */
export function clearDeviceToken(): void {
  try {
    window.localStorage.removeItem(DEVICE_KEY);
    window.localStorage.removeItem(CURSOR_KEY);
  } catch {
    // ignore
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

/** What the app shows after the hub answered 401 to a credential. */
export type AfterUnauthorized = "desktop-token-rejected" | "device-unpaired" | "sign-in";

/**
 * The hub refused the credential: forget it (never the desktop app's) and say
 * what to show. A paired phone's 401 means it was unpaired (revoked): it must
 * offer pairing again, not the owner's sign-in form.
 */
export function forgetRejectedCredential(kind: CredentialKind): AfterUnauthorized {
  switch (kind) {
    case "desktop":
      return "desktop-token-rejected";
    case "device":
      clearDeviceToken();
      return "device-unpaired";
    case "owner":
      clearToken();
      return "sign-in";
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

const TRANSPORT_KEY = "hapi.eventTransport";

/**
 * The event transport that worked on this origin ("ws" after SSE failed), so
 * the next page load starts with it. Not kept in the desktop app.
 */
export function loadEventTransport(): "sse" | "ws" | null {
  if (desktopToken()) return null;
  try {
    const v = window.localStorage.getItem(TRANSPORT_KEY);
    return v === "ws" || v === "sse" ? v : null;
  } catch {
    return null;
  }
}

export function storeEventTransport(t: "sse" | "ws"): void {
  if (desktopToken()) return;
  try {
    if (t === "sse") window.localStorage.removeItem(TRANSPORT_KEY);
    else window.localStorage.setItem(TRANSPORT_KEY, t);
  } catch {
    // ignore
  }
}
