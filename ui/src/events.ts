// Live hub events over SSE (WebSocket as fallback) with our own reconnect loop.
//
// Tickets are single use, so the browser's built-in EventSource retry would
// fail: on any error we close the source, wait (exponential backoff), fetch a
// fresh ticket and reopen with `after=` the last global seq we processed.
//
// Phones sleep: a connection can be dead without an `error` ever firing. When
// the page comes back (`visibilitychange` after a while hidden, `online`,
// `pageshow` from the back/forward cache) the stream reconnects at once, from
// the last processed seq; the cursor drops anything already seen, so there is
// no gap and no duplicate.
//
// Transport: SSE unless the path cannot carry it (a cloudflared quick tunnel,
// whose host we recognise) or SSE fails twice in a row without opening; then
// the WebSocket endpoint, remembered per origin once it worked.
import type { HubEvent } from "./generated/HubEvent";
import { ApiError, type HubApi } from "./api";

export type ConnectionStatus = "connecting" | "live" | "reconnecting" | "offline";

export type EventTransport = "sse" | "ws";

/** Consecutive failures (without ever opening) after which the other transport is tried. */
export const SWITCH_AFTER_FAILURES = 2;

/**
 * Whether SSE can work on the path this page was loaded over, as far as the
 * host tells: false through a cloudflared quick tunnel (it buffers event
 * streams), else unknown (null).
 */
export function sseHintForHost(hostname: string): boolean | null {
  return /(^|\.)trycloudflare\.com$/i.test(hostname) ? false : null;
}

/**
 * Picks SSE or WebSocket for each connection attempt.
 *
 * - Only one is available → that one.
 * - The path is known not to carry SSE (`sse` false) → always WebSocket.
 * - Otherwise start with the remembered transport (else SSE); after
 *   `SWITCH_AFTER_FAILURES` failures in a row that never opened, switch to the
 *   other one. A connection that opened and later dropped (sleep, network
 *   change) does not count.
 * - `onPrefer` is told whenever a different transport than the remembered one
 *   opened (to remember it per origin).
 */
export class TransportChooser {
  private mode: EventTransport;
  private failures = 0;
  private remembered: EventTransport | null;

  constructor(
    private readonly opts: {
      sse?: boolean | null;
      remembered?: EventTransport | null;
      hasEventSource: boolean;
      hasWebSocket: boolean;
      onPrefer?: (t: EventTransport) => void;
    },
  ) {
    this.remembered = opts.remembered ?? null;
    this.mode = this.remembered ?? "sse";
  }

  current(): EventTransport {
    if (!this.opts.hasEventSource) return "ws";
    if (!this.opts.hasWebSocket) return "sse";
    if (this.opts.sse === false) return "ws";
    return this.mode;
  }

  opened(t: EventTransport): void {
    this.failures = 0;
    this.mode = t;
    if (this.opts.sse === false || !this.opts.hasEventSource || !this.opts.hasWebSocket) return;
    if (t !== (this.remembered ?? "sse")) {
      this.remembered = t;
      this.opts.onPrefer?.(t);
    }
  }

  failed(t: EventTransport, everOpened: boolean): void {
    if (everOpened) {
      this.failures = 0;
      return;
    }
    if (t !== this.current()) return;
    this.failures += 1;
    if (this.failures >= SWITCH_AFTER_FAILURES) {
      this.failures = 0;
      this.mode = t === "sse" ? "ws" : "sse";
    }
  }
}

/** Why the page asks for a reconnect. */
export type ResumeReason = "visible" | "online" | "pageshow";

/** A connection hidden at least this long is not trusted: phones freeze sockets without closing them. */
export const STALE_AFTER_HIDDEN_MS = 10_000;

/** What `watchPageResume` listens on (`window` and `document`, or fakes). */
export interface ResumeTargets {
  win: Pick<EventTarget, "addEventListener" | "removeEventListener">;
  doc: Pick<EventTarget, "addEventListener" | "removeEventListener"> & { visibilityState: string };
  now?: () => number;
}

/**
 * Calls `onResume` when the page comes back: visible again (with how long it
 * was hidden), the network is back, or it was restored from the back/forward
 * cache. Returns the unsubscribe function.
 */
export function watchPageResume(t: ResumeTargets, onResume: (reason: ResumeReason, hiddenMs: number) => void): () => void {
  const now = t.now ?? (() => Date.now());
  let hiddenAt: number | null = t.doc.visibilityState === "hidden" ? now() : null;
  const onVisibility = () => {
    if (t.doc.visibilityState === "hidden") {
      hiddenAt = now();
    } else if (t.doc.visibilityState === "visible" && hiddenAt !== null) {
      const hiddenMs = now() - hiddenAt;
      hiddenAt = null;
      onResume("visible", hiddenMs);
    }
  };
  const onOnline = () => onResume("online", 0);
  const onPageShow = (e: Event) => {
    if ((e as PageTransitionEvent).persisted) onResume("pageshow", 0);
  };
  t.doc.addEventListener("visibilitychange", onVisibility);
  t.win.addEventListener("online", onOnline);
  t.win.addEventListener("pageshow", onPageShow);
  return () => {
    t.doc.removeEventListener("visibilitychange", onVisibility);
    t.win.removeEventListener("online", onOnline);
    t.win.removeEventListener("pageshow", onPageShow);
  };
}

/**
 * Resume bookkeeping for the global event stream: remembers the last seq that
 * was processed and rejects anything at or below it (replays after resume).
 */
export class EventCursor {
  constructor(private last: number | null = null) {}

  /** Last processed global seq, or null before the first event. */
  get lastSeq(): number | null {
    return this.last;
  }

  /** True if the event is new (and records it); false for a duplicate. */
  accept(seq: number): boolean {
    if (!Number.isFinite(seq)) return false;
    if (this.last !== null && seq <= this.last) return false;
    this.last = seq;
    return true;
  }

  /**
   * Query string for (re)connecting: `after=N`, or `after=latest` on a fresh
   * start (the snapshot comes over REST, so the old log need not be replayed).
   */
  resumeQuery(): string {
    return this.last === null ? "&after=latest" : `&after=${this.last}`;
  }
}

/** Exponential backoff: 0.5 s, 1 s, 2 s, ... capped at 10 s. */
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly initialMs = 500,
    private readonly maxMs = 10_000,
  ) {}

  next(): number {
    const delay = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    if (delay < this.maxMs) this.attempt += 1;
    return delay;
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Parses one SSE `data:` payload; null if it is not a HubEvent. */
export function parseHubEvent(data: string): HubEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const v = value as { seq?: unknown; type?: unknown };
  if (typeof v.seq !== "number") return null;
  if (v.type !== "session" && v.type !== "message" && v.type !== "approval" && v.type !== "machine") return null;
  return value as HubEvent;
}

export interface EventStreamHandlers {
  onEvent(event: HubEvent): void;
  onStatus(status: ConnectionStatus): void;
  /**
   * Called when a connection opens. `resumed` is false when there was no
   * cursor (first connection, or nothing received yet): the caller must then
   * reload its snapshot, since events before this point were not streamed.
   */
  onOpen(resumed: boolean): void;
  /** The cursor moved (to persist it across page loads). */
  onCursor?(seq: number): void;
}

export interface EventStreamOptions {
  /** Whether the path carries SSE (false: WebSocket only); null/absent: try SSE first. */
  sse?: boolean | null;
  /** The transport that worked last time on this origin. */
  rememberedTransport?: EventTransport | null;
  /** A different transport than the remembered one worked. */
  onTransport?: (t: EventTransport) => void;
}

type Phase = "idle" | "connecting" | "open" | "waiting";

export class HubEventStream {
  private readonly cursor: EventCursor;
  private readonly backoff = new Backoff();
  private readonly chooser: TransportChooser;
  private source: EventSource | null = null;
  private socket: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private generation = 0;
  private phase: Phase = "idle";

  constructor(
    private readonly api: HubApi,
    private readonly handlers: EventStreamHandlers,
    /** Where to resume from on the first connection (persisted cursor). */
    initialSeq: number | null = null,
    options: EventStreamOptions = {},
  ) {
    this.cursor = new EventCursor(initialSeq);
    this.chooser = new TransportChooser({
      sse: options.sse ?? null,
      remembered: options.rememberedTransport ?? null,
      hasEventSource: typeof EventSource !== "undefined",
      hasWebSocket: typeof WebSocket !== "undefined",
      onPrefer: options.onTransport,
    });
  }

  start(): void {
    this.stopped = false;
    this.handlers.onStatus("connecting");
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.generation += 1;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.phase = "idle";
    this.close();
  }

  /** The transport the next connection attempt uses. */
  get nextTransport(): EventTransport {
    return this.chooser.current();
  }

  /**
   * The page came back (see `watchPageResume`). Waiting for a retry → retry
   * now. Open, but the page was hidden long enough for the socket to have
   * been frozen, or the network came back, or restored from the back/forward
   * cache → reconnect from the last seq. Connecting → nothing to do.
   */
  resume(reason: ResumeReason, hiddenMs = 0): void {
    if (this.stopped) return;
    if (this.phase === "connecting") return;
    if (this.phase === "open" && reason === "visible" && hiddenMs < STALE_AFTER_HIDDEN_MS) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.backoff.reset();
    this.close();
    this.handlers.onStatus("connecting");
    void this.connect();
  }

  private async connect(): Promise<void> {
    const gen = ++this.generation;
    this.phase = "connecting";
    let ticket: string;
    try {
      ticket = (await this.api.eventTicket()).ticket;
    } catch (e) {
      if (gen !== this.generation) return;
      if (e instanceof ApiError && e.code === "unauthorized") {
        this.phase = "idle";
        return; // app signs out
      }
      this.scheduleReconnect(gen);
      return;
    }
    if (this.stopped || gen !== this.generation) return;
    const resumed = this.cursor.lastSeq !== null;
    const query = `ticket=${encodeURIComponent(ticket)}${this.cursor.resumeQuery()}`;
    const transport = this.chooser.current();
    let opened = false;
    let failed = false;
    const onOpen = () => {
      if (gen !== this.generation) return;
      opened = true;
      this.phase = "open";
      this.chooser.opened(transport);
      this.backoff.reset();
      this.handlers.onStatus("live");
      this.handlers.onOpen(resumed);
    };
    const onData = (data: unknown) => {
      if (gen !== this.generation || typeof data !== "string") return;
      const event = parseHubEvent(data);
      if (event && this.cursor.accept(event.seq)) {
        this.handlers.onEvent(event);
        this.handlers.onCursor?.(event.seq);
      }
    };
    const onFail = () => {
      if (failed || gen !== this.generation) return;
      failed = true; // a WebSocket reports both `error` and `close`
      this.close();
      this.chooser.failed(transport, opened);
      this.scheduleReconnect(gen);
    };

    if (transport === "sse") {
      const source = new EventSource(`/api/events?${query}`);
      this.source = source;
      source.addEventListener("open", onOpen);
      const onMessage = (ev: Event) => onData((ev as MessageEvent).data);
      source.addEventListener("hub", onMessage);
      source.addEventListener("message", onMessage);
      source.addEventListener("error", onFail);
    } else {
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      const socket = new WebSocket(`${scheme}//${window.location.host}/api/events/ws?${query}`);
      this.socket = socket;
      socket.addEventListener("open", onOpen);
      socket.addEventListener("message", (ev) => onData(ev.data));
      socket.addEventListener("error", onFail);
      socket.addEventListener("close", onFail);
    }
  }

  private close(): void {
    this.source?.close();
    this.source = null;
    const socket = this.socket;
    this.socket = null;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close();
  }

  private scheduleReconnect(gen: number): void {
    if (this.stopped || gen !== this.generation) return;
    this.phase = "waiting";
    this.handlers.onStatus(typeof navigator !== "undefined" && navigator.onLine === false ? "offline" : "reconnecting");
    const delay = this.backoff.next();
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) void this.connect();
    }, delay);
  }
}
