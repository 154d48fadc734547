// Builders for wire objects used by the unit tests.
import type { Approval } from "./generated/Approval";
import type { Message } from "./generated/Message";
import type { Session } from "./generated/Session";
import type { SessionUpdate } from "./generated/SessionUpdate";

export function msg(seq: number, update: SessionUpdate, sessionId = "s1"): Message {
  return { session_id: sessionId, seq, event_seq: seq * 10, created_at: "2026-01-01T00:00:00Z", update };
}

export function session(id: string, over: Partial<Session> = {}): Session {
  return {
    id,
    agent: "claude",
    cwd: "/home/ann/src/demo",
    state: "idle",
    pending_approvals: 0,
    last_seq: 0,
    skip_approvals: false,
    usage: { total_tokens: 0, cost_usd: null, budget: null, budget_paused: false },
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    ...over,
  };
}

export function approval(id: string, over: Partial<Approval> = {}): Approval {
  return {
    id,
    session_id: "s1",
    machine_id: null,
    tool: "Bash",
    input: { command: "echo hi > out.txt" },
    options: [
      { id: "o1", kind: "allow_once" },
      { id: "o2", kind: "reject_once" },
    ],
    state: "pending",
    decision: null,
    decided_by: null,
    message: null,
    created_at: "2026-01-01T00:00:00Z",
    decided_at: null,
    ...over,
  };
}

/** A minimal stand-in for `window` (storage, location, history, hashchange), for `vi.stubGlobal("window", …)`. */
export class FakeWindow extends EventTarget {
  readonly store = new Map<string, string>();
  readonly localStorage = {
    getItem: (k: string) => this.store.get(k) ?? null,
    setItem: (k: string, v: string) => void this.store.set(k, String(v)),
    removeItem: (k: string) => void this.store.delete(k),
  };
  readonly location = { pathname: "/", search: "", hash: "" };
  readonly history = {
    replaceState: (_state: unknown, _title: string, url: string) => {
      const i = url.indexOf("#");
      this.location.hash = i >= 0 ? url.slice(i) : "";
    },
  };
  __HAPI_DESKTOP__?: unknown;
  __TAURI__?: unknown;

  constructor(init: { hash?: string; desktop?: unknown; tauri?: unknown } = {}) {
    super();
    this.location.hash = init.hash ?? "";
    if (init.desktop !== undefined) this.__HAPI_DESKTOP__ = init.desktop;
    if (init.tauri !== undefined) this.__TAURI__ = init.tauri;
  }

  /** Sets the fragment like `location.hash = …` does, firing `hashchange` when it changed. */
  setHash(hash: string): void {
    const next = hash.startsWith("#") ? hash : `#${hash}`;
    if (next === this.location.hash) return;
    this.location.hash = next;
    this.dispatchEvent(new Event("hashchange"));
  }
}
