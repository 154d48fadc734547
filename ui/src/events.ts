// Live hub events over SSE (WebSocket as fallback) with our own reconnect loop.
//
// Tickets are single use, so the browser's built-in EventSource retry would
// fail: on any error we close the source, wait (exponential backoff), fetch a
// fresh ticket and reopen with `after=` the last global seq we processed.
import type { HubEvent } from "./generated/HubEvent";
import { ApiError, type HubApi } from "./api";

export type ConnectionStatus = "connecting" | "live" | "reconnecting" | "offline";

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

export class HubEventStream {
  private readonly cursor: EventCursor;
  private readonly backoff = new Backoff();
  private source: EventSource | null = null;
  private socket: WebSocket | null = null;
  private failuresWithoutOpen = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  private generation = 0;

  constructor(
    private readonly api: HubApi,
    private readonly handlers: EventStreamHandlers,
    /** Where to resume from on the first connection (persisted cursor). */
    initialSeq: number | null = null,
  ) {
    this.cursor = new EventCursor(initialSeq);
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
    this.close();
  }

  private async connect(): Promise<void> {
    const gen = ++this.generation;
    let ticket: string;
    try {
      ticket = (await this.api.eventTicket()).ticket;
    } catch (e) {
      if (e instanceof ApiError && e.code === "unauthorized") return; // app signs out
      this.scheduleReconnect(gen);
      return;
    }
    if (this.stopped || gen !== this.generation) return;
    const resumed = this.cursor.lastSeq !== null;
    const query = `ticket=${encodeURIComponent(ticket)}${this.cursor.resumeQuery()}`;
    const transport = this.chooseTransport();
    let opened = false;
    let failed = false;
    const onOpen = () => {
      if (gen !== this.generation) return;
      opened = true;
      this.failuresWithoutOpen = 0;
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
      if (!opened) this.failuresWithoutOpen += 1;
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

  /**
   * SSE first. If it keeps failing before ever opening (a proxy that buffers
   * or blocks event streams), alternate with the WebSocket endpoint.
   */
  private chooseTransport(): "sse" | "ws" {
    if (typeof EventSource === "undefined") return "ws";
    if (typeof WebSocket === "undefined") return "sse";
    return this.failuresWithoutOpen >= 3 && this.failuresWithoutOpen % 2 === 1 ? "ws" : "sse";
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
    this.handlers.onStatus(navigator.onLine === false ? "offline" : "reconnecting");
    const delay = this.backoff.next();
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.stopped) void this.connect();
    }, delay);
  }
}
