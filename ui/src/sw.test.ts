// Runs public/sw.js against fake service-worker globals: which requests it
// answers (and how), and above all which it never touches.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import swSource from "../public/sw.js?raw";

const ORIGIN = "https://hub.example";

class FakeCache {
  readonly entries = new Map<string, Response>();
  private key(req: string | { url: string }): string {
    const url = typeof req === "string" ? req : req.url;
    return new URL(url, ORIGIN).pathname;
  }
  async match(req: string | { url: string }) {
    const r = this.entries.get(this.key(req));
    return r ? r.clone() : undefined;
  }
  async put(req: string | { url: string }, res: Response) {
    this.entries.set(this.key(req), res);
  }
  async delete(req: string | { url: string }) {
    return this.entries.delete(this.key(req));
  }
  async keys() {
    return [...this.entries.keys()].map((p) => ({ url: ORIGIN + p }));
  }
}

class FakeCaches {
  readonly byName = new Map<string, FakeCache>();
  async open(name: string) {
    if (!this.byName.has(name)) this.byName.set(name, new FakeCache());
    return this.byName.get(name)!;
  }
  async keys() {
    return [...this.byName.keys()];
  }
  async delete(name: string) {
    return this.byName.delete(name);
  }
}

type Listener = (e: unknown) => void;

interface Harness {
  listeners: Map<string, Listener>;
  caches: FakeCaches;
  network: ReturnType<typeof vi.fn>;
  online: boolean;
}

const INDEX = '<!doctype html><script type="module" src="/assets/index-abc123.js"></script><link href="/assets/index-def456.css">';

function load(): Harness {
  const listeners = new Map<string, Listener>();
  const caches = new FakeCaches();
  const h: Harness = { listeners, caches, network: vi.fn(), online: true };
  h.network.mockImplementation(async (input: string | { url: string }) => {
    if (!h.online) throw new TypeError("Failed to fetch");
    const path = new URL(typeof input === "string" ? input : input.url, ORIGIN).pathname;
    if (path === "/") return new Response(INDEX, { headers: { "content-type": "text/html; charset=utf-8" } });
    return new Response(`body of ${path}`, { headers: { "content-type": "text/plain" } });
  });
  const self = {
    location: { origin: ORIGIN },
    addEventListener: (type: string, fn: Listener) => listeners.set(type, fn),
    skipWaiting: async () => {},
    clients: { claim: async () => {} },
  };
  new Function("self", "caches", "fetch", swSource)(self, caches, h.network);
  return h;
}

function request(path: string, over: { method?: string; mode?: string; headers?: Record<string, string>; origin?: string } = {}) {
  return {
    url: (over.origin ?? ORIGIN) + path,
    method: over.method ?? "GET",
    mode: over.mode ?? "no-cors",
    headers: new Headers(over.headers ?? {}),
  };
}

/** Dispatches a fetch event; resolves with the response given to respondWith, or null if it was left alone. */
async function dispatch(h: Harness, req: ReturnType<typeof request>): Promise<Response | null> {
  let answered: Promise<Response> | null = null;
  const waits: Promise<unknown>[] = [];
  h.listeners.get("fetch")!({
    request: req,
    respondWith: (p: Promise<Response>) => {
      answered = p;
    },
    waitUntil: (p: Promise<unknown>) => waits.push(p),
  });
  if (answered === null) return null;
  const res = await (answered as Promise<Response>);
  await Promise.all(waits);
  return res;
}

async function install(h: Harness) {
  const waits: Promise<unknown>[] = [];
  h.listeners.get("install")!({ waitUntil: (p: Promise<unknown>) => waits.push(p) });
  await Promise.all(waits);
}

describe("service worker", () => {
  beforeEach(() => {
    vi.useRealTimers();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("never touches the API, pairing, health, other origins, non-GET or authorized requests", async () => {
    const h = load();
    for (const path of ["/api/sessions", "/api/events?ticket=t&after=3", "/api/events/ws", "/api", "/pair", "/health", "/ready", "/metrics", "/sw.js"]) {
      expect(await dispatch(h, request(path)), path).toBeNull();
    }
    expect(await dispatch(h, request("/", { method: "POST" }))).toBeNull();
    expect(await dispatch(h, request("/assets/x.js", { origin: "https://cdn.example" }))).toBeNull();
    expect(await dispatch(h, request("/assets/x.js", { headers: { Authorization: "Bearer t" } }))).toBeNull();
    expect(h.network).not.toHaveBeenCalled();
  });

  it("install precaches the shell, its built assets and the offline page", async () => {
    const h = load();
    await install(h);
    const shell = await h.caches.open("hapi-shell-v1");
    const assets = await h.caches.open("hapi-assets-v1");
    expect([...shell.entries.keys()].sort()).toEqual(
      ["/", "/icons/apple-touch-icon.png", "/icons/icon-192.png", "/icons/icon-512.png", "/icons/maskable-512.png", "/manifest.webmanifest", "/offline.html"].sort(),
    );
    expect([...assets.entries.keys()].sort()).toEqual(["/assets/index-abc123.js", "/assets/index-def456.css"]);
  });

  it("navigations: network first, the cached shell when offline", async () => {
    const h = load();
    await install(h);
    const online = await dispatch(h, request("/", { mode: "navigate" }));
    expect(await online!.text()).toBe(INDEX);
    h.online = false;
    const offline = await dispatch(h, request("/", { mode: "navigate" }));
    expect(await offline!.text()).toBe(INDEX);
  });

  it("offline without a cached shell: the offline page", async () => {
    const h = load();
    const shell = await h.caches.open("hapi-shell-v1");
    await shell.put("/offline.html", new Response("offline page"));
    h.online = false;
    const res = await dispatch(h, request("/", { mode: "navigate" }));
    expect(await res!.text()).toBe("offline page");
  });

  it("assets: cache first", async () => {
    const h = load();
    await install(h);
    h.network.mockClear();
    h.online = false;
    const res = await dispatch(h, request("/assets/index-abc123.js"));
    expect(await res!.text()).toBe("body of /assets/index-abc123.js");
    expect(h.network).not.toHaveBeenCalled();
  });

  it("a new build's shell replaces the old assets", async () => {
    const h = load();
    await install(h);
    const assets = await h.caches.open("hapi-assets-v1");
    await assets.put("/assets/old-000.js", new Response("old"));
    await dispatch(h, request("/", { mode: "navigate" }));
    expect([...assets.entries.keys()].sort()).toEqual(["/assets/index-abc123.js", "/assets/index-def456.css"]);
  });
});
