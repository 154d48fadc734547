// The route lives in the fragment: `#/session/<id>` shows a session, anything
// else the list. The desktop app opens a session (deep link, notification
// click) by setting `location.hash` the same way.

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
