import { describe, expect, it } from "vitest";
import {
  applyHubEvent,
  emptyHistory,
  historyGapAfter,
  initialHubState,
  mergeMessages,
  pendingApprovals,
  machineApprovals,
  sortedMachines,
  visibleApprovals,
  type HubState,
} from "./hubState";
import { approval, msg, session } from "./testFixtures";

const text = (seq: number) => msg(seq, { kind: "agent_message_chunk", text: String(seq) });

function withHistory(seqs: number[]): HubState {
  return {
    ...initialHubState,
    sessions: { s1: session("s1", { last_seq: seqs.length ? Math.max(...seqs) : 0 }) },
    histories: { s1: { ...emptyHistory, loaded: true, messages: seqs.map(text) } },
  };
}

describe("mergeMessages", () => {
  it("appends newer messages", () => {
    expect(mergeMessages([text(1), text(2)], [text(3)]).map((m) => m.seq)).toEqual([1, 2, 3]);
  });
  it("dedupes and sorts overlapping pages", () => {
    const merged = mergeMessages([text(3), text(4)], [text(1), text(2), text(3)]);
    expect(merged.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
  });
  it("returns the same array when nothing is new", () => {
    const a = [text(1)];
    expect(mergeMessages(a, [])).toBe(a);
  });
});

describe("applyHubEvent", () => {
  it("adds a live message to an open history once", () => {
    let s = withHistory([1, 2]);
    const e = { seq: 100, type: "message" as const, message: text(3) };
    s = applyHubEvent(s, e, 0);
    s = applyHubEvent(s, e, 0); // the same message again (e.g. also fetched by REST)
    expect(s.histories.s1.messages.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(s.sessions.s1.last_seq).toBe(3);
  });

  it("ignores messages of sessions that are not open", () => {
    const s = applyHubEvent(initialHubState, { seq: 1, type: "message", message: text(1) }, 0);
    expect(s.histories).toEqual({});
  });

  it("replaces sessions with the newer snapshot", () => {
    let s = applyHubEvent(initialHubState, { seq: 1, type: "session", session: session("s1", { state: "working", updated_at: "2026-01-01T00:00:05Z" }) }, 0);
    s = applyHubEvent(s, { seq: 2, type: "session", session: session("s1", { state: "idle", updated_at: "2026-01-01T00:00:06Z" }) }, 0);
    expect(s.sessions.s1.state).toBe("idle");
  });

  it("tracks approvals: pending, then decided (never back to pending)", () => {
    let s = applyHubEvent(initialHubState, { seq: 1, type: "approval", approval: approval("a1") }, 0);
    expect(pendingApprovals(s).map((a) => a.id)).toEqual(["a1"]);
    s = applyHubEvent(s, { seq: 2, type: "approval", approval: approval("a1", { state: "decided", decision: "allow_once", decided_by: "owner" }) }, 1000);
    expect(pendingApprovals(s)).toEqual([]);
    // A stale pending snapshot does not resurrect it.
    s = applyHubEvent(s, { seq: 3, type: "approval", approval: approval("a1") }, 1500);
    expect(s.approvals.a1.state).toBe("decided");
    // Shown (with who decided) for a short while, then gone.
    expect(visibleApprovals(s, "s1", 2000, 4000).map((a) => a.id)).toEqual(["a1"]);
    expect(visibleApprovals(s, "s1", 6000, 4000)).toEqual([]);
  });
});

describe("replayed approvals", () => {
  it("does not show a card for a decision that happened before we saw it pending", () => {
    const s = applyHubEvent(initialHubState, { seq: 9, type: "approval", approval: approval("old", { state: "decided", decision: "allow_once", decided_by: "owner" }) }, 1000);
    expect(visibleApprovals(s, "s1", 1001, 4000)).toEqual([]);
  });

  it("does not show a card for an old decision replayed after its pending event", () => {
    const t = Date.parse("2026-01-01T00:10:00Z");
    let s = applyHubEvent(initialHubState, { seq: 1, type: "approval", approval: approval("a") }, t);
    s = applyHubEvent(s, { seq: 2, type: "approval", approval: approval("a", { state: "decided", decision: "allow_once", decided_at: "2026-01-01T00:00:01Z" }) }, t);
    expect(visibleApprovals(s, "s1", t + 1, 4000)).toEqual([]);
  });
});

describe("historyGapAfter", () => {
  it("finds no gap when contiguous and up to date", () => {
    expect(historyGapAfter(withHistory([1, 2, 3]).histories.s1, 3)).toBeNull();
  });
  it("finds a hole in the middle", () => {
    expect(historyGapAfter(withHistory([1, 2, 5]).histories.s1, 5)).toBe(2);
  });
  it("finds a missing tail", () => {
    expect(historyGapAfter(withHistory([1, 2]).histories.s1, 4)).toBe(2);
  });
  it("ignores histories that are not loaded yet", () => {
    expect(historyGapAfter({ ...emptyHistory }, 10)).toBeNull();
  });
});

describe("machines", () => {
  const machine = (id: string, name: string, state: "online" | "offline") => ({
    id,
    name,
    state,
    runner: state === "online" ? { pid: 1, version: "0.1.0", started_at: "2026-11-25T00:00:00.000Z" } : null,
    last_seen: null,
    created_at: "2026-11-25T00:00:00.000Z",
  });
  it("follows machine events and lists online machines first", () => {
    let s = applyHubEvent(initialHubState, { seq: 1, type: "machine", machine: machine("a", "alpha", "offline") }, 0);
    s = applyHubEvent(s, { seq: 2, type: "machine", machine: machine("b", "beta", "online") }, 0);
    expect(sortedMachines(s).map((m) => m.id)).toEqual(["b", "a"]);
    s = applyHubEvent(s, { seq: 3, type: "machine", machine: machine("b", "beta", "offline") }, 0);
    expect(s.machines.b.state).toBe("offline");
    expect(sortedMachines(s).map((m) => m.id)).toEqual(["a", "b"]);
  });
});

describe("machineApprovals", () => {
  it("lists pending machine-scoped requests of that machine only", () => {
    const forMachine = approval("a1", { session_id: null, machine_id: "m1" });
    const forSession = approval("a2");
    const decided = approval("a3", { state: "decided", session_id: null, machine_id: "m1" });
    const state = { ...initialHubState, approvals: { a1: forMachine, a2: forSession, a3: decided } };
    expect(machineApprovals(state, "m1").map((a) => a.id)).toEqual(["a1"]);
    expect(machineApprovals(state, "m2")).toEqual([]);
  });
});
