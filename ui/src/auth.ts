// Owner token handling. The token arrives in the URL fragment (`#token=...`),
// which browsers never send to servers; we move it to localStorage and strip
// it from the address bar right away.

const STORAGE_KEY = "hapi.token";

/** Reads `token` from a fragment like `#token=abc` or `#/x?token=abc&y=1`. */
export function tokenFromFragment(hash: string): string | null {
  const raw = hash.startsWith("#") ? hash.slice(1) : hash;
  const query = raw.includes("?") ? raw.slice(raw.indexOf("?") + 1) : raw;
  const value = new URLSearchParams(query).get("token");
  return value && value.trim() ? value.trim() : null;
}

/** Takes a token from the fragment (if any), persists it, and cleans the URL. */
export function adoptTokenFromLocation(): void {
  const token = tokenFromFragment(window.location.hash);
  if (!token) return;
  storeToken(token);
  const url = window.location.pathname + window.location.search;
  window.history.replaceState(null, "", url);
}

export function loadToken(): string | null {
  try {
    return window.localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string): void {
  try {
    window.localStorage.setItem(STORAGE_KEY, token);
  } catch {
    // Private mode without storage: the token lives for this page only.
  }
}

export function clearToken(): void {
  try {
    window.localStorage.removeItem(STORAGE_KEY);
  } catch {
    // ignore
  }
}
