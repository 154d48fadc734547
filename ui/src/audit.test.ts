import { describe, expect, it } from "vitest";
import { ApiError } from "./api";
import { actorText, auditQuery, AuditStore, entryView, latencyText, sinceOf } from "./audit";
import type { AuditEntry } from "./generated/AuditEntry";
import type { AuditList } from "./generated/AuditList";
import { hashForAudit, parseRoute } from "./routing";

const NOW = Date.parse("2026-11-25T12:00:00Z");

function entry(id: number, over: Partial<AuditEntry> = {}): AuditEntry {
  return {
    id,
    at: "2026-11-25T11:00:00.000Z",
    kind: "decision",
    session_id: "s1",
    approval_id: "a1",
    tool_call_id: null,
    actor: "owner",
    channel: "web",
    decision: "allow_once",
    tool: "Bash",
    summary: "git status",
    latency_ms: 4200,
    outcome: null,
    action: null,
    ...over,
  };
}

describe("audit query", () => {
  it("names the session, the start of the range, the page and its size", () => {
    expect(auditQuery({ sessionId: null, range: "all" }, NOW, null)).toBe("?limit=100");
    expect(auditQuery({ sessionId: "s 1", range: "24h" }, NOW, 42, 10)).toBe(
      "?session_id=s+1&since=2026-11-24T12%3A00%3A00.000Z&before=42&limit=10",
    );
    expect(sinceOf("7d", NOW)).toBe("2026-11-18T12:00:00.000Z");
    expect(sinceOf("all", NOW)).toBeNull();
  });
});

describe("entries for a person", () => {
  it("decisions say what, who, where and how fast", () => {
    expect(entryView(entry(1))).toEqual({
      kind: "decision",
      headline: "Allowed once · Bash",
      summary: "git status",
      meta: "by you via web after 4.2 s",
      tone: "allow",
    });
    const policy = entryView(entry(2, { actor: "policy:no rm", channel: "policy", decision: "reject_once", latency_ms: 0 }));
    expect(policy.headline).toBe("Rejected · Bash");
    expect(policy.meta).toBe("by policy rule “no rm” via policy after 0 ms");
    expect(policy.tone).toBe("deny");
    expect(entryView(entry(3, { actor: "Ana's phone", channel: "phone" })).meta).toContain("by Ana's phone via phone");
  });

  it("tool calls show their outcome, admin entries their action", () => {
    const call = entryView(entry(4, { kind: "tool_call", actor: null, channel: null, decision: null, outcome: "failed", latency_ms: null }));
    expect(call.headline).toBe("Tool call · Bash (failed)");
    expect(call.tone).toBe("deny");
    const skip = entryView(entry(5, { kind: "admin", action: "skip_approvals_enabled", tool: null, decision: null, channel: null }));
    expect(skip.headline).toBe("Skip approvals turned ON");
    expect(skip.tone).toBe("warn");
    expect(skip.meta).toBe("by you");
    expect(entryView(entry(6, { kind: "admin", action: "policy_updated" })).headline).toBe("Approval policy changed");
  });

  it("latencies and actors read naturally", () => {
    expect(latencyText(850)).toBe("850 ms");
    expect(latencyText(61_000)).toBe("1 min");
    expect(latencyText(5_400_000)).toBe("1.5 h");
    expect(actorText("skip-approvals")).toBe("skip approvals");
    expect(actorText("session-rule")).toContain("session rule");
  });
});

describe("AuditStore", () => {
  it("pages newest first and starts over for a new filter", async () => {
    const queries: string[] = [];
    const pages: AuditList[] = [
      { entries: [entry(9), entry(8)], has_more: true },
      { entries: [entry(7)], has_more: false },
      { entries: [entry(5, { session_id: "s2" })], has_more: false },
    ];
    const store = new AuditStore({ audit: async (q) => (queries.push(q), pages.shift()!) }, () => NOW);
    await store.load({ sessionId: null, range: "all" });
    expect(store.entries.map((e) => e.id)).toEqual([9, 8]);
    expect(store.hasMore).toBe(true);
    await store.more();
    expect(store.entries.map((e) => e.id)).toEqual([9, 8, 7]);
    expect(queries[1]).toBe("?before=8&limit=100");
    expect(store.hasMore).toBe(false);
    await store.more(); // nothing more: no request
    expect(queries.length).toBe(2);
    await store.load({ sessionId: "s2", range: "all" });
    expect(store.entries.map((e) => e.id)).toEqual([5]);
    expect(queries[2]).toBe("?session_id=s2&limit=100");
  });

  it("keeps the error and drops a stale answer", async () => {
    let release: (l: AuditList) => void = () => {};
    const calls: string[] = [];
    const store = new AuditStore({
      audit: (q) => {
        calls.push(q);
        if (calls.length === 1) return new Promise<AuditList>((r) => (release = r));
        if (calls.length === 2) return Promise.resolve({ entries: [entry(2)], has_more: false });
        return Promise.reject(new ApiError(401, "unauthorized", "invalid token"));
      },
    });
    const slow = store.load({ sessionId: "old", range: "all" });
    await store.load({ sessionId: "new", range: "all" });
    release({ entries: [entry(1)], has_more: false });
    await slow;
    expect(store.entries.map((e) => e.id)).toEqual([2]);
    await store.load();
    expect(store.error).toBe("invalid token");
    expect(store.loading).toBe(false);
  });
});

describe("routes", () => {
  it("#/audit, one session's audit, and #/policy", () => {
    expect(parseRoute("#/audit")).toEqual({ kind: "audit", sessionId: null });
    expect(parseRoute(hashForAudit("a/b c"))).toEqual({ kind: "audit", sessionId: "a/b c" });
    expect(parseRoute("#/audit?session=")).toEqual({ kind: "audit", sessionId: null });
    expect(parseRoute("#/policy")).toEqual({ kind: "policy" });
    expect(parseRoute("#/auditx")).toEqual({ kind: "list" });
    expect(parseRoute("#/pair-phone")).toEqual({ kind: "pair-phone" });
  });
});
