// The client's picture of the hub: sessions, approvals and the loaded part of
// each session's history. Pure functions only; hub.ts owns the mutable store.
import type { Approval } from "./generated/Approval";
import type { HubEvent } from "./generated/HubEvent";
import type { Machine } from "./generated/Machine";
import type { Message } from "./generated/Message";
import type { Session } from "./generated/Session";
import type { ConnectionStatus } from "./events";

export interface SessionHistory {
  /** Ascending by seq, without duplicates. */
  messages: Message[];
  /** Older messages exist before messages[0]. */
  hasOlder: boolean;
  loadingOlder: boolean;
  /** The first page has arrived. */
  loaded: boolean;
  error: string | null;
}

export interface HubState {
  sessions: Record<string, Session>;
  /** Machines and their runners' state (kept live by machine events). */
  machines: Record<string, Machine>;
  sessionsLoaded: boolean;
  approvals: Record<string, Approval>;
  /** Local time (ms) an approval was seen decided; drives the fade-out. */
  decidedSeenAt: Record<string, number>;
  histories: Record<string, SessionHistory>;
  connection: ConnectionStatus;
  loadError: string | null;
}

export const initialHubState: HubState = {
  sessions: {},
  machines: {},
  sessionsLoaded: false,
  approvals: {},
  decidedSeenAt: {},
  histories: {},
  connection: "connecting",
  loadError: null,
};

export const emptyHistory: SessionHistory = {
  messages: [],
  hasOlder: false,
  loadingOlder: false,
  loaded: false,
  error: null,
};

/** Merges two ascending message lists, dropping duplicates by seq. */
export function mergeMessages(existing: Message[], incoming: Message[]): Message[] {
  if (incoming.length === 0) return existing;
  const last = existing.length ? existing[existing.length - 1].seq : -Infinity;
  // Fast path: pure append of newer messages (the live case).
  if (incoming.every((m, i) => m.seq > last && (i === 0 || m.seq > incoming[i - 1].seq))) {
    return existing.concat(incoming);
  }
  const bySeq = new Map<number, Message>();
  for (const m of existing) bySeq.set(m.seq, m);
  for (const m of incoming) if (!bySeq.has(m.seq)) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** Prefers the newer of two snapshots of the same session. */
export function newerSession(current: Session | undefined, next: Session): Session {
  if (!current) return next;
  return Date.parse(next.updated_at) >= Date.parse(current.updated_at) || current.last_seq < next.last_seq
    ? next
    : current;
}

/** An approval never goes back from decided/cancelled to pending. */
export function newerApproval(current: Approval | undefined, next: Approval): Approval {
  if (!current) return next;
  if (current.state !== "pending" && next.state === "pending") return current;
  return next;
}

/** Decisions older than this (hub clock vs ours, generous for skew) are history. */
const RECENT_DECISION_MS = 60_000;

export function putApproval(state: HubState, approval: Approval, now: number): HubState {
  const current = state.approvals[approval.id];
  const merged = newerApproval(current, approval);
  // Only a decision we watch happen (pending → decided, just now) gets a
  // fading card; replayed history and snapshots of old decisions do not.
  const decidedAt = merged.decided_at ? Date.parse(merged.decided_at) : Number.NaN;
  const recent = Number.isNaN(decidedAt) || Math.abs(now - decidedAt) < RECENT_DECISION_MS;
  const decidedSeenAt =
    merged.state !== "pending" &&
    current?.state === "pending" &&
    recent &&
    state.decidedSeenAt[approval.id] === undefined
      ? { ...state.decidedSeenAt, [approval.id]: now }
      : state.decidedSeenAt;
  return { ...state, approvals: { ...state.approvals, [approval.id]: merged }, decidedSeenAt };
}

/** Adds live messages to a session's history, if that history is loaded. */
export function putMessages(state: HubState, sessionId: string, messages: Message[]): HubState {
  const history = state.histories[sessionId];
  if (!history) return state; // not open: it will load the newest page when opened
  const merged = mergeMessages(history.messages, messages);
  if (merged === history.messages) return state;
  return { ...state, histories: { ...state.histories, [sessionId]: { ...history, messages: merged } } };
}

/** Applies one live event. */
export function applyHubEvent(state: HubState, event: HubEvent, now: number): HubState {
  switch (event.type) {
    case "session":
      return {
        ...state,
        sessions: { ...state.sessions, [event.session.id]: newerSession(state.sessions[event.session.id], event.session) },
      };
    case "approval":
      return putApproval(state, event.approval, now);
    case "message": {
      const next = putMessages(state, event.message.session_id, [event.message]);
      const session = next.sessions[event.message.session_id];
      if (session && session.last_seq < event.message.seq) {
        return { ...next, sessions: { ...next.sessions, [session.id]: { ...session, last_seq: event.message.seq } } };
      }
      return next;
    }
    case "machine":
      return { ...state, machines: { ...state.machines, [event.machine.id]: event.machine } };
  }
}

/**
 * If a loaded history has a hole at its end (a live message arrived whose
 * predecessor we never saw), returns the seq to fetch `after=`.
 */
export function historyGapAfter(history: SessionHistory | undefined, lastSeq: number): number | null {
  if (!history || !history.loaded) return null;
  const msgs = history.messages;
  const tail = msgs.length ? msgs[msgs.length - 1].seq : 0;
  for (let i = 1; i < msgs.length; i++) {
    if (msgs[i].seq !== msgs[i - 1].seq + 1) return msgs[i - 1].seq;
  }
  return tail < lastSeq ? tail : null;
}

export function sortedSessions(state: HubState): Session[] {
  return Object.values(state.sessions).sort(
    (a, b) => Date.parse(b.updated_at) - Date.parse(a.updated_at) || b.created_at.localeCompare(a.created_at),
  );
}

export function pendingApprovals(state: HubState, sessionId?: string): Approval[] {
  return Object.values(state.approvals)
    .filter((a) => a.state === "pending" && (sessionId === undefined || a.session_id === sessionId))
    .sort((a, b) => a.created_at.localeCompare(b.created_at));
}

/** Approvals to show as cards: pending ones plus those decided very recently. */
export function visibleApprovals(state: HubState, sessionId: string, now: number, keepMs: number): Approval[] {
  return Object.values(state.approvals)
    .filter(
      (a) =>
        a.session_id === sessionId &&
        (a.state === "pending" ||
          (state.decidedSeenAt[a.id] !== undefined && now - state.decidedSeenAt[a.id] < keepMs)),
    )
    .sort((a, b) => a.created_at.localeCompare(b.created_at));
}

/** Machines, online ones first, then by name. */
export function sortedMachines(state: HubState): Machine[] {
  const rank = (m: Machine) => (m.state === "online" ? 0 : 1);
  return Object.values(state.machines).sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
}

/** Pending machine-scoped approvals of a machine (e.g. "create this directory?"). */
export function machineApprovals(state: HubState, machineId: string): Approval[] {
  return Object.values(state.approvals)
    .filter((a) => a.state === "pending" && a.session_id === null && a.machine_id === machineId)
    .sort((a, b) => a.created_at.localeCompare(b.created_at));
}
