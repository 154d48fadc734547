// The mutable store: holds HubState, talks to the API and the event stream,
// and notifies subscribed views. Reductions live in hubState.ts.
import { useEffect, useState } from "preact/hooks";
import { ApiError, HubApi, PAGE_SIZE } from "./api";
import { loadEventCursor, loadEventTransport, storeEventCursor, storeEventTransport } from "./auth";
import type { ApprovalResponse } from "./generated/ApprovalResponse";
import type { Decision } from "./generated/Decision";
import type { HubEvent } from "./generated/HubEvent";
import { HubEventStream, sseHintForHost, watchPageResume } from "./events";
import {
  applyHubEvent,
  emptyHistory,
  historyGapAfter,
  initialHubState,
  mergeMessages,
  putApproval,
  putMessages,
  newerSession,
  type HubState,
  type SessionHistory,
} from "./hubState";
import { Observable } from "./observable";

/** How long a decided approval card stays visible (shows who decided). */
export const DECIDED_CARD_MS = 4000;

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.code === "network" ? "Hub unreachable" : e.message || e.code;
  return e instanceof Error ? e.message : String(e);
}

export class HubStore extends Observable {
  private state: HubState = initialHubState;
  readonly api: HubApi;
  private readonly stream: HubEventStream;
  private readonly gapFetches = new Set<string>();
  private pruneTimer: ReturnType<typeof setTimeout> | null = null;
  private notifyScheduled = false;
  private cursorTimer: ReturnType<typeof setTimeout> | null = null;
  private openedOnce = false;
  private cursorSeq = 0;
  private unwatchResume: (() => void) | null = null;

  constructor(token: string, onUnauthorized: () => void) {
    super();
    this.api = new HubApi(token, onUnauthorized);
    const hostname = typeof window === "undefined" ? "" : window.location.hostname;
    this.stream = new HubEventStream(this.api, {
      onEvent: (e) => this.onEvent(e),
      onStatus: (connection) => this.set({ ...this.state, connection }),
      onOpen: (resumed) => {
        // Without a cursor, or on this page's first connection (resuming from
        // a persisted cursor), our snapshot may predate the stream: reload it.
        if (!resumed || !this.openedOnce) void this.loadSnapshot();
        else void this.fillGaps();
        this.openedOnce = true;
      },
      onCursor: (seq) => this.persistCursor(seq),
    }, loadEventCursor(), {
      sse: sseHintForHost(hostname),
      rememberedTransport: loadEventTransport(),
      onTransport: storeEventTransport,
    });
  }

  get snapshot(): HubState {
    return this.state;
  }

  /** Updates state; views re-render at most once per frame (event bursts, replays). */
  private set(next: HubState): void {
    if (next === this.state) return;
    this.state = next;
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    const flush = () => {
      this.notifyScheduled = false;
      this.emit();
    };
    if (typeof requestAnimationFrame === "function" && document.visibilityState === "visible") requestAnimationFrame(flush);
    else setTimeout(flush, 50);
  }

  private persistCursor(seq: number): void {
    this.cursorSeq = seq;
    if (this.cursorTimer) return;
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = null;
      storeEventCursor(this.cursorSeq);
    }, 500);
  }

  start(): void {
    this.stream.start();
    // Phones sleep: reconnect (from the last seq) when the page comes back.
    if (typeof window !== "undefined" && typeof document !== "undefined") {
      this.unwatchResume = watchPageResume({ win: window, doc: document }, (reason, hiddenMs) =>
        this.stream.resume(reason, hiddenMs),
      );
    }
    // Show something even before the stream opens (or if it cannot).
    void this.loadSnapshot();
  }

  stop(): void {
    this.stream.stop();
    this.unwatchResume?.();
    this.unwatchResume = null;
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    if (this.cursorTimer) clearTimeout(this.cursorTimer);
  }

  /** Sessions and pending approvals, merged with whatever events already said. */
  async loadSnapshot(): Promise<void> {
    // Pending approvals we knew before asking; only those may be dropped as
    // stale below (one that arrives by event meanwhile is newer than the answer).
    const knownBefore = new Set(Object.keys(this.state.approvals));
    try {
      const [sessions, approvals, machines] = await Promise.all([
        this.api.sessions(),
        this.api.pendingApprovals(),
        this.api.machines(),
      ]);
      let s = this.state;
      // The snapshot is read after the event stream opened, so it is at least as
      // new as any machine event received so far.
      s = { ...s, machines: { ...s.machines, ...Object.fromEntries(machines.map((m) => [m.id, m])) } };
      const merged = { ...s.sessions };
      for (const sess of sessions) merged[sess.id] = newerSession(merged[sess.id], sess);
      s = { ...s, sessions: merged, sessionsLoaded: true, loadError: null };
      // Pending approvals we hold that the hub no longer lists were decided
      // while we were away; drop them rather than show stale buttons.
      const listed = new Set(approvals.map((a) => a.id));
      const kept = Object.fromEntries(
        Object.entries(s.approvals).filter(([id, a]) => a.state !== "pending" || listed.has(id) || !knownBefore.has(id)),
      );
      s = { ...s, approvals: kept };
      const now = Date.now();
      for (const a of approvals) s = putApproval(s, a, now);
      this.set(s);
      await this.fillGaps();
    } catch (e) {
      if (e instanceof ApiError && e.code === "unauthorized") return;
      this.set({ ...this.state, loadError: errorText(e), sessionsLoaded: this.state.sessionsLoaded });
    }
  }

  private onEvent(event: HubEvent): void {
    const now = Date.now();
    this.set(applyHubEvent(this.state, event, now));
    if (event.type === "approval" && event.approval.state !== "pending") this.schedulePrune();
    if (event.type === "message") {
      const id = event.message.session_id;
      const gap = historyGapAfter(this.state.histories[id], event.message.seq);
      if (gap !== null) void this.fetchAfter(id, gap);
    }
  }

  private schedulePrune(): void {
    if (this.pruneTimer) clearTimeout(this.pruneTimer);
    this.pruneTimer = setTimeout(() => {
      this.pruneTimer = null;
      // Re-render so decided cards past their display time disappear.
      this.set({ ...this.state });
    }, DECIDED_CARD_MS + 50);
  }

  private updateHistory(id: string, fn: (h: SessionHistory) => SessionHistory): void {
    const current = this.state.histories[id] ?? emptyHistory;
    this.set({ ...this.state, histories: { ...this.state.histories, [id]: fn(current) } });
  }

  /** Loads the newest page of a session's history (once). */
  async openSession(id: string): Promise<void> {
    const existing = this.state.histories[id];
    if (existing && (existing.loaded || existing.loadingOlder)) return;
    this.updateHistory(id, () => ({ ...emptyHistory, loadingOlder: true }));
    try {
      let session = this.state.sessions[id];
      if (!session) {
        session = await this.api.session(id);
        this.set({ ...this.state, sessions: { ...this.state.sessions, [id]: newerSession(this.state.sessions[id], session) } });
      }
      const page = await this.api.messagesBefore(id, session.last_seq + 1, PAGE_SIZE);
      this.updateHistory(id, (h) => ({
        ...h,
        messages: mergeInto(h, page.messages),
        hasOlder: page.has_more,
        loaded: true,
        loadingOlder: false,
        error: null,
      }));
      await this.fetchAfter(id, this.tailSeq(id));
    } catch (e) {
      this.updateHistory(id, (h) => ({ ...h, loadingOlder: false, error: errorText(e) }));
    }
  }

  /** Retries a failed first load. */
  retrySession(id: string): void {
    const { [id]: _dropped, ...rest } = this.state.histories;
    this.set({ ...this.state, histories: rest });
    void this.openSession(id);
  }

  async loadOlder(id: string): Promise<void> {
    const h = this.state.histories[id];
    if (!h || !h.loaded || !h.hasOlder || h.loadingOlder || h.messages.length === 0) return;
    this.updateHistory(id, (x) => ({ ...x, loadingOlder: true }));
    try {
      const page = await this.api.messagesBefore(id, h.messages[0].seq, PAGE_SIZE);
      this.updateHistory(id, (x) => ({
        ...x,
        messages: mergeInto(x, page.messages),
        hasOlder: page.has_more,
        loadingOlder: false,
      }));
    } catch (e) {
      this.updateHistory(id, (x) => ({ ...x, loadingOlder: false, error: errorText(e) }));
    }
  }

  private tailSeq(id: string): number {
    const msgs = this.state.histories[id]?.messages ?? [];
    return msgs.length ? msgs[msgs.length - 1].seq : 0;
  }

  /** Fetches messages after `after` until caught up (live gaps, resumes). */
  private async fetchAfter(id: string, after: number): Promise<void> {
    const key = `${id}:${after}`;
    if (this.gapFetches.has(key)) return;
    this.gapFetches.add(key);
    try {
      let cursor = after;
      for (;;) {
        const page = await this.api.messagesAfter(id, cursor, PAGE_SIZE);
        this.set(putMessages(this.state, id, page.messages));
        if (!page.has_more || page.messages.length === 0) break;
        cursor = page.messages[page.messages.length - 1].seq;
      }
    } catch {
      // The next event or reconnect will try again.
    } finally {
      this.gapFetches.delete(key);
    }
  }

  /** After a resume, top up every open history whose session moved on. */
  private async fillGaps(): Promise<void> {
    for (const [id, h] of Object.entries(this.state.histories)) {
      const session = this.state.sessions[id];
      if (!h.loaded || !session) continue;
      const gap = historyGapAfter(h, session.last_seq);
      if (gap !== null) await this.fetchAfter(id, gap);
    }
  }

  /**
   * Decides an approval. For an allowed machine-scoped request the answer also
   * says which session it started, or why the runner could not.
   */
  async decide(approvalId: string, decision: Decision): Promise<ApprovalResponse> {
    const answer = await this.api.decide(approvalId, decision);
    this.set(putApproval(this.state, answer.approval, Date.now()));
    this.schedulePrune();
    return answer;
  }

  /**
   * Someone decided first (409 already_decided): show the card as decided
   * until the approval event (or the refresh) tells us by whom.
   */
  async decidedElsewhere(approvalId: string): Promise<void> {
    const a = this.state.approvals[approvalId];
    if (a && a.state === "pending") {
      this.set(putApproval(this.state, { ...a, state: "decided", decision: null, decided_by: null }, Date.now()));
      this.schedulePrune();
    }
    await this.loadSnapshot();
  }
}

function mergeInto(h: SessionHistory, incoming: SessionHistory["messages"]): SessionHistory["messages"] {
  return mergeMessages(h.messages, incoming);
}

/** Subscribes a component to the store. */
export function useHubState(store: HubStore): HubState {
  const [state, setState] = useState(store.snapshot);
  useEffect(() => {
    setState(store.snapshot);
    return store.subscribe(() => setState(store.snapshot));
  }, [store]);
  return state;
}

/** Re-renders every `ms` (relative times, decided-card fade-out). */
export function useNow(ms: number): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}
