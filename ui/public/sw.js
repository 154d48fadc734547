/* HAPI service worker: keeps the app shell so the app opens (and installs)
 * on a phone. See ui/README.md, "Installable app (PWA)".
 *
 * - `/` and navigations: network first (a new hub build shows up at once),
 *   the cached shell when the network is down, else `offline.html`.
 * - `/assets/*` (Vite fingerprints their names): cache first.
 * - The manifest and icons: cache first.
 * - NEVER cached, never touched: `/api/*` (data, events, tokens), `/pair`,
 *   `/health`, `/ready`, `/metrics`, other origins, anything but GET, and
 *   anything carrying an Authorization header.
 *
 * Registered only in a secure context (https, localhost) and never inside the
 * desktop app (src/pwa.ts).
 */
"use strict";

const VERSION = "v1";
const SHELL_CACHE = "hapi-shell-" + VERSION;
const ASSET_CACHE = "hapi-assets-" + VERSION;
const OFFLINE_URL = "/offline.html";
const STATIC_URLS = [
  OFFLINE_URL,
  "/manifest.webmanifest",
  "/icons/icon-192.png",
  "/icons/icon-512.png",
  "/icons/maskable-512.png",
  "/icons/apple-touch-icon.png",
];
/** With a cached shell, a navigation waits this long for the network before using it. */
const NETWORK_TIMEOUT_MS = 4000;

function neverCached(pathname) {
  return (
    pathname === "/api" ||
    pathname.startsWith("/api/") ||
    pathname === "/pair" ||
    pathname.startsWith("/pair/") ||
    pathname === "/health" ||
    pathname === "/ready" ||
    pathname === "/metrics" ||
    pathname === "/sw.js"
  );
}

/** "shell" | "asset" | "static" | null (null: not ours, the browser handles it). */
function strategyFor(request) {
  if (request.method !== "GET") return null;
  let url;
  try {
    url = new URL(request.url);
  } catch (e) {
    return null;
  }
  if (url.origin !== self.location.origin) return null;
  if (neverCached(url.pathname)) return null;
  if (request.headers && request.headers.has("authorization")) return null;
  if (request.mode === "navigate" || url.pathname === "/" || url.pathname === "/index.html") return "shell";
  if (url.pathname.startsWith("/assets/")) return "asset";
  if (STATIC_URLS.indexOf(url.pathname) >= 0) return "static";
  return null;
}

/** The built assets a page references (`/assets/index-abc123.js`, …). */
function assetsIn(html) {
  const found = html.match(/\/assets\/[A-Za-z0-9._~\-/]+/g) || [];
  return found.filter((v, i) => found.indexOf(v) === i);
}

function cacheable(response) {
  return response && response.ok && (response.type === "basic" || response.type === "default");
}

/** Caches a fresh shell and its assets; drops assets no longer referenced. */
async function keepShell(html, response) {
  const shell = await caches.open(SHELL_CACHE);
  await shell.put("/", response);
  const assets = await caches.open(ASSET_CACHE);
  const wanted = assetsIn(html);
  await Promise.all(
    wanted.map(async (path) => {
      if (await assets.match(path)) return;
      try {
        const res = await fetch(path);
        if (cacheable(res)) await assets.put(path, res);
      } catch (e) {
        // Next time.
      }
    }),
  );
  const keys = await assets.keys();
  await Promise.all(
    keys.map((req) => {
      const path = new URL(req.url, self.location.origin).pathname;
      return wanted.indexOf(path) >= 0 ? null : assets.delete(req);
    }),
  );
}

async function fetchShell() {
  const res = await fetch("/", { cache: "no-store" });
  const type = (res.headers && res.headers.get("content-type")) || "";
  if (cacheable(res) && type.indexOf("text/html") >= 0) {
    const forCache = res.clone();
    await keepShell(await res.clone().text(), forCache);
  }
  return res;
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(SHELL_CACHE);
      await Promise.all(
        STATIC_URLS.map(async (path) => {
          try {
            const res = await fetch(path, { cache: "no-store" });
            if (cacheable(res)) await cache.put(path, res);
          } catch (e) {
            // Optional files; the shell still works.
          }
        }),
      );
      try {
        await fetchShell();
      } catch (e) {
        // Offline while installing: cached on the next visit.
      }
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(
        names.filter((n) => n.startsWith("hapi-") && n !== SHELL_CACHE && n !== ASSET_CACHE).map((n) => caches.delete(n)),
      );
      await self.clients.claim();
    })(),
  );
});

async function offlineAnswer() {
  const shell = await caches.open(SHELL_CACHE);
  const cached = (await shell.match("/")) || (await shell.match(OFFLINE_URL));
  return cached || new Response("HAPI is offline.", { status: 503, headers: { "content-type": "text/plain; charset=utf-8" } });
}

/** Network first; the cached shell when it fails (or is slow and a copy exists). */
async function shellResponse(event) {
  const request = event.request;
  const root = new URL(request.url).pathname === "/" || new URL(request.url).pathname === "/index.html";
  const network = (async () => {
    const res = await fetch(request);
    const type = (res.headers && res.headers.get("content-type")) || "";
    if (root && cacheable(res) && type.indexOf("text/html") >= 0) {
      // Both copies are taken now: the page consumes `res` itself.
      const forText = res.clone();
      const forCache = res.clone();
      event.waitUntil(forText.text().then((html) => keepShell(html, forCache)).catch(() => {}));
    }
    return res;
  })();
  const shell = await caches.open(SHELL_CACHE);
  const cached = await shell.match("/");
  if (!cached) {
    try {
      return await network;
    } catch (e) {
      return offlineAnswer();
    }
  }
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), NETWORK_TIMEOUT_MS);
  });
  try {
    const res = await Promise.race([network, timeout]);
    return res || cached;
  } catch (e) {
    return cached;
  } finally {
    clearTimeout(timer);
  }
}

async function cacheFirst(request, cacheName) {
  const cache = await caches.open(cacheName);
  const cached = await cache.match(request);
  if (cached) return cached;
  const res = await fetch(request);
  if (cacheable(res)) await cache.put(request, res.clone());
  return res;
}

self.addEventListener("fetch", (event) => {
  const strategy = strategyFor(event.request);
  if (strategy === "shell") event.respondWith(shellResponse(event));
  else if (strategy === "asset") event.respondWith(cacheFirst(event.request, ASSET_CACHE));
  else if (strategy === "static") event.respondWith(cacheFirst(event.request, SHELL_CACHE));
  // Anything else (the API above all) goes to the network untouched.
});
