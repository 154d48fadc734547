import { afterEach, describe, expect, it, vi } from "vitest";
import type { HubApi } from "./api";
import { ApiError } from "./api";
import type { HubEvent } from "./generated/HubEvent";
import {
  Backoff,
  EventCursor,
  HubEventStream,
  parseHubEvent,
  sseHintForHost,
  STALE_AFTER_HIDDEN_MS,
  TransportChooser,
  watchPageResume,
  type ConnectionStatus,
  type EventTransport,
} from "./events";

describe("EventCursor", () => {
  it("starts without a resume point", () => {
    const c = new EventCursor();
    expect(c.lastSeq).toBeNull();
    expect(c.resumeQuery()).toBe("&after=latest");
  });

  it("accepts increasing seqs and drops replays", () => {
    const c = new EventCursor();
    expect(c.accept(5)).toBe(true);
    expect(c.accept(6)).toBe(true);
    expect(c.accept(6)).toBe(false);
    expect(c.accept(3)).toBe(false);
    expect(c.accept(9)).toBe(true);
    expect(c.lastSeq).toBe(9);
    expect(c.resumeQuery()).toBe("&after=9");
  });

  it("resumes after the last processed event across reconnects", () => {
    const c = new EventCursor();
    [1, 2, 3].forEach((s) => c.accept(s));
    // The server replays from after=3, but a proxy might repeat 3.
    const replay = [3, 4, 5];
    expect(replay.filter((s) => c.accept(s))).toEqual([4, 5]);
    expect(c.resumeQuery()).toBe("&after=5");
  });

  it("ignores non-numeric seqs", () => {
    const c = new EventCursor();
    expect(c.accept(Number.NaN)).toBe(false);
    expect(c.lastSeq).toBeNull();
  });
});

describe("Backoff", () => {
  it("doubles from 0.5 s up to 10 s and resets", () => {
    const b = new Backoff();
    const delays = Array.from({ length: 8 }, () => b.next());
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
    b.reset();
    expect(b.next()).toBe(500);
  });
});

describe("parseHubEvent", () => {
  it("parses a hub event", () => {
    const e = parseHubEvent(JSON.stringify({ seq: 7, type: "approval", approval: { id: "a" } }));
    expect(e?.seq).toBe(7);
    expect(e?.type).toBe("approval");
  });

  it("rejects garbage", () => {
    expect(parseHubEvent("not json")).toBeNull();
    expect(parseHubEvent(JSON.stringify({ type: "session" }))).toBeNull();
    expect(parseHubEvent(JSON.stringify({ seq: 1, type: "other" }))).toBeNull();
  });
});

describe("TransportChooser", () => {
  const both = { hasEventSource: true, hasWebSocket: true };

  it("uses WebSocket when the path cannot carry SSE (cloudflared)", () => {
    const c = new TransportChooser({ ...both, sse: false });
    expect(c.current()).toBe("ws");
    c.failed("ws", false);
    c.failed("ws", false);
    c.failed("ws", false);
    expect(c.current()).toBe("ws");
  });

  it("switches to WebSocket after SSE fails twice without opening, and remembers it once it works", () => {
    const remembered: EventTransport[] = [];
    const c = new TransportChooser({ ...both, onPrefer: (t) => remembered.push(t) });
    expect(c.current()).toBe("sse");
    c.failed("sse", false);
    expect(c.current()).toBe("sse");
    c.failed("sse", false);
    expect(c.current()).toBe("ws");
    c.opened("ws");
    expect(remembered).toEqual(["ws"]);
    c.failed("ws", true); // dropped after working (sleep): no switch
    expect(c.current()).toBe("ws");
  });

  it("a drop after opening does not count towards switching", () => {
    const c = new TransportChooser(both);
    c.failed("sse", false);
    c.failed("sse", true);
    c.failed("sse", false);
    expect(c.current()).toBe("sse");
  });

  it("starts with the remembered transport and goes back to SSE if WebSocket stops working", () => {
    const remembered: EventTransport[] = [];
    const c = new TransportChooser({ ...both, remembered: "ws", onPrefer: (t) => remembered.push(t) });
    expect(c.current()).toBe("ws");
    c.opened("ws");
    expect(remembered).toEqual([]);
    c.failed("ws", false);
    c.failed("ws", false);
    expect(c.current()).toBe("sse");
    c.opened("sse");
    expect(remembered).toEqual(["sse"]);
  });

  it("only one available: that one", () => {
    expect(new TransportChooser({ hasEventSource: false, hasWebSocket: true }).current()).toBe("ws");
    expect(new TransportChooser({ hasEventSource: true, hasWebSocket: false, sse: false }).current()).toBe("sse");
  });

  it("recognises a cloudflared quick tunnel by its host", () => {
    expect(sseHintForHost("shy-tree-12.trycloudflare.com")).toBe(false);
    expect(sseHintForHost("machine.tail1234.ts.net")).toBeNull();
    expect(sseHintForHost("192.168.1.20")).toBeNull();
  });
});

class FakeDoc extends EventTarget {
  visibilityState = "visible";
  set(state: "visible" | "hidden") {
    this.visibilityState = state;
    this.dispatchEvent(new Event("visibilitychange"));
  }
}

describe("watchPageResume", () => {
  it("reports visible-again (with the hidden time), online and back/forward-cache restores", () => {
    let now = 1000;
    const win = new EventTarget();
    const doc = new FakeDoc();
    const seen: [string, number][] = [];
    const stop = watchPageResume({ win, doc, now: () => now }, (r, ms) => seen.push([r, ms]));
    doc.set("hidden");
    now += 30_000;
    doc.set("visible");
    win.dispatchEvent(new Event("online"));
    const show = Object.assign(new Event("pageshow"), { persisted: true });
    win.dispatchEvent(show);
    win.dispatchEvent(Object.assign(new Event("pageshow"), { persisted: false })); // a normal load: nothing
    stop();
    win.dispatchEvent(new Event("online"));
    expect(seen).toEqual([
      ["visible", 30_000],
      ["online", 0],
      ["pageshow", 0],
    ]);
  });
});

// ---------------------------------------------------------------------------
// The stream itself, with fake EventSource / WebSocket.

class FakeSource extends EventTarget {
  static all: FakeSource[] = [];
  closed = false;
  constructor(readonly url: string) {
    super();
    FakeSource.all.push(this);
  }
  close() {
    this.closed = true;
  }
  open() {
    this.dispatchEvent(new Event("open"));
  }
  send(e: object) {
    this.dispatchEvent(Object.assign(new Event("hub"), { data: JSON.stringify(e) }));
  }
  fail() {
    this.dispatchEvent(new Event("error"));
  }
}

class FakeSocket extends EventTarget {
  static OPEN = 1;
  static all: FakeSocket[] = [];
  readyState = 0;
  constructor(readonly url: string) {
    super();
    FakeSocket.all.push(this);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }
  send(e: object) {
    this.dispatchEvent(Object.assign(new Event("message"), { data: JSON.stringify(e) }));
  }
}

const ev = (seq: number): object => ({ seq, type: "session", session: { id: `s${seq}` } });

function streamSetup(opts: { sse?: boolean | null; hostname?: string } = {}) {
  FakeSource.all = [];
  FakeSocket.all = [];
  vi.stubGlobal("EventSource", FakeSource);
  vi.stubGlobal("WebSocket", FakeSocket);
  vi.stubGlobal("window", { location: { protocol: "https:", host: opts.hostname ?? "hub.example" } });
  vi.stubGlobal("navigator", { onLine: true });
  let n = 0;
  const api = { eventTicket: vi.fn(async () => ({ ticket: `t${++n}`, expires_in_s: 60 })) } as unknown as HubApi;
  const events: number[] = [];
  const statuses: ConnectionStatus[] = [];
  const opens: boolean[] = [];
  const stream = new HubEventStream(
    api,
    {
      onEvent: (e: HubEvent) => events.push(e.seq),
      onStatus: (s) => statuses.push(s),
      onOpen: (resumed) => opens.push(resumed),
    },
    null,
    { sse: opts.sse ?? null },
  );
  return { api, stream, events, statuses, opens };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("HubEventStream", () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it("reconnects on resume from the last seq: no gap, no duplicate", async () => {
    const t = streamSetup();
    t.stream.start();
    await tick();
    const first = FakeSource.all[0];
    expect(first.url).toBe("/api/events?ticket=t1&after=latest");
    first.open();
    first.send(ev(1));
    first.send(ev(2));

    t.stream.resume("online");
    await tick();
    expect(first.closed).toBe(true);
    const second = FakeSource.all[1];
    expect(second.url).toBe("/api/events?ticket=t2&after=2");
    first.send(ev(3)); // a late event of the old connection is ignored
    second.open();
    second.send(ev(2)); // replayed by a proxy
    second.send(ev(3));
    second.send(ev(4));
    expect(t.events).toEqual([1, 2, 3, 4]);
    expect(t.opens).toEqual([false, true]);
    t.stream.stop();
  });

  it("after a short hide the open connection is kept; after a long one it is renewed", async () => {
    const t = streamSetup();
    t.stream.start();
    await tick();
    FakeSource.all[0].open();
    t.stream.resume("visible", 1000);
    await tick();
    expect(FakeSource.all).toHaveLength(1);
    t.stream.resume("visible", STALE_AFTER_HIDDEN_MS);
    await tick();
    expect(FakeSource.all).toHaveLength(2);
    t.stream.stop();
  });

  it("while waiting to retry, a resume retries at once", async () => {
    vi.useFakeTimers();
    const t = streamSetup();
    t.stream.start();
    await vi.advanceTimersByTimeAsync(0);
    FakeSource.all[0].fail();
    expect(t.statuses[t.statuses.length - 1]).toBe("reconnecting");
    t.stream.resume("online");
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeSource.all).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(60_000); // the cancelled backoff timer does not fire another attempt
    expect(FakeSource.all).toHaveLength(2);
    t.stream.stop();
  });

  it("uses the WebSocket endpoint when SSE is unavailable on the path", async () => {
    const t = streamSetup({ sse: false });
    t.stream.start();
    await tick();
    expect(FakeSource.all).toHaveLength(0);
    expect(FakeSocket.all[0].url).toBe("wss://hub.example/api/events/ws?ticket=t1&after=latest");
    FakeSocket.all[0].open();
    FakeSocket.all[0].send(ev(7));
    expect(t.events).toEqual([7]);
    t.stream.stop();
  });

  it("falls back to WebSocket after SSE fails twice without opening", async () => {
    vi.useFakeTimers();
    const t = streamSetup();
    t.stream.start();
    await vi.advanceTimersByTimeAsync(0);
    FakeSource.all[0].fail();
    await vi.advanceTimersByTimeAsync(10_000);
    FakeSource.all[1].fail();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(FakeSource.all).toHaveLength(2);
    expect(FakeSocket.all).toHaveLength(1);
    expect(t.stream.nextTransport).toBe("ws");
    t.stream.stop();
  });

  it("stops quietly when the ticket is refused (the app handles the 401)", async () => {
    const t = streamSetup();
    (t.api.eventTicket as unknown as ReturnType<typeof vi.fn>).mockRejectedValueOnce(new ApiError(401, "unauthorized", "no"));
    t.stream.start();
    await tick();
    expect(FakeSource.all).toHaveLength(0);
    expect(t.statuses).toEqual(["connecting"]);
  });
});
