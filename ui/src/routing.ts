// The route lives in the fragment: `#/session/<id>` shows a session, anything
// else the list. The desktop app opens a session (deep link, notification
// click) by setting `location.hash` the same way.
//
// Phone access adds three routes:
// - `#/pair-phone`: the owner's pairing dialog (QR code and typed code); the
//   desktop tray opens the window there for "Pair phone…";
// - `#/pair/<secret>`: what a phone opens from the QR code (the secret stays in
//   the fragment, so it never reaches a server log);
// - `#/pair`: the phone's form for a typed code.
//
// The owner also has `#/audit[?session=<id>]` (the audit log) and `#/policy`
// (the approval policy editor).

/** The session id in `#/session/<id>[?…]`, or null for the list. */
export function routeFromHash(hash: string): string | null {
  const m = /^#\/session\/([^/?#]+)/.exec(hash);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return m[1]; // a stray `%` (unencoded id): take it literally
  }
}

export function hashForSession(sessionId: string | null): string {
  return sessionId ? `#/session/${encodeURIComponent(sessionId)}` : "#/";
}

export function navigateTo(sessionId: string | null): void {
  const target = hashForSession(sessionId);
  if (window.location.hash !== target) window.location.hash = target;
}

/** What `watchRoute` needs of `window`. */
export interface RouteSource {
  location: { hash: string };
  addEventListener(type: "hashchange", fn: () => void): void;
  removeEventListener(type: "hashchange", fn: () => void): void;
}

/**
 * Calls `onRoute` with the new route on every hash change (whatever was shown
 * before: the list, or another session). Returns the unsubscribe function.
 */
export function watchRoute(source: RouteSource, onRoute: (route: string | null) => void): () => void {
  const onHash = () => onRoute(routeFromHash(source.location.hash));
  source.addEventListener("hashchange", onHash);
  return () => source.removeEventListener("hashchange", onHash);
}

export type Route =
  | { kind: "list" }
  | { kind: "session"; id: string }
  /** A phone pairs: with the QR code's secret, or (null) by typing the code. */
  | { kind: "pair"; secret: string | null }
  /** The owner's pairing dialog. */
  | { kind: "pair-phone" }
  /** The audit log (owner), optionally of one session: `#/audit[?session=<id>]`. */
  | { kind: "audit"; sessionId: string | null }
  /** The approval policy editor (owner): `#/policy`. */
  | { kind: "policy" };

export const POLICY_HASH = "#/policy";

export function hashForAudit(sessionId: string | null): string {
  return sessionId ? `#/audit?session=${encodeURIComponent(sessionId)}` : "#/audit";
}

export const PAIR_PHONE_HASH = "#/pair-phone";
export const PAIR_WITH_CODE_HASH = "#/pair";

/** Every route the app knows; unknown fragments are the list. */
export function parseRoute(hash: string): Route {
  const session = routeFromHash(hash);
  if (session !== null) return { kind: "session", id: session };
  if (/^#\/pair-phone(?:[/?#].*)?$/.test(hash)) return { kind: "pair-phone" };
  if (/^#\/policy(?:[/?#].*)?$/.test(hash)) return { kind: "policy" };
  const audit = /^#\/audit(?:\?([^#]*))?$/.exec(hash);
  if (audit) {
    const session = new URLSearchParams(audit[1] ?? "").get("session");
    return { kind: "audit", sessionId: session && session.trim() ? session.trim() : null };
  }
  const m = /^#\/pair(?:\/([^/?#]*))?(?:[/?#].*)?$/.exec(hash);
  if (m) {
    const raw = m[1] ?? "";
    let secret = raw;
    try {
      secret = decodeURIComponent(raw);
    } catch {
      // take it literally
    }
    return { kind: "pair", secret: secret.trim() ? secret.trim() : null };
  }
  return { kind: "list" };
}

/** Like `watchRoute`, with the full route (pairing routes included). */
export function watchParsedRoute(source: RouteSource, onRoute: (route: Route) => void): () => void {
  const onHash = () => onRoute(parseRoute(source.location.hash));
  source.addEventListener("hashchange", onHash);
  return () => source.removeEventListener("hashchange", onHash);
}
