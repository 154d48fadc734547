// The audit log (owner only): how entries read for a person, the query for
// `GET /api/audit`, and `AuditStore`, which pages through it newest first.
import { ApiError } from "./api";
import type { AuditEntry } from "./generated/AuditEntry";
import type { AuditList } from "./generated/AuditList";
import type { Decision } from "./generated/Decision";
import type { DecisionChannel } from "./generated/DecisionChannel";
import { Observable } from "./observable";

/** What the audit view shows: one session or all, since when. */
export interface AuditFilter {
  sessionId: string | null;
  range: AuditRange;
}

export type AuditRange = "all" | "24h" | "7d" | "30d";

export const AUDIT_RANGES: { value: AuditRange; label: string }[] = [
  { value: "all", label: "All time" },
  { value: "24h", label: "Last 24 hours" },
  { value: "7d", label: "Last 7 days" },
  { value: "30d", label: "Last 30 days" },
];

const RANGE_MS: Record<Exclude<AuditRange, "all">, number> = {
  "24h": 24 * 3600_000,
  "7d": 7 * 24 * 3600_000,
  "30d": 30 * 24 * 3600_000,
};

export const AUDIT_PAGE = 100;

/** The `since` of a range, as RFC 3339, or null for all time. */
export function sinceOf(range: AuditRange, now: number): string | null {
  return range === "all" ? null : new Date(now - RANGE_MS[range]).toISOString();
}

/** `?session_id=…&since=…&before=…&limit=…` for `GET /api/audit`. */
export function auditQuery(filter: AuditFilter, now: number, before: number | null, limit = AUDIT_PAGE): string {
  const params = new URLSearchParams();
  if (filter.sessionId) params.set("session_id", filter.sessionId);
  const since = sinceOf(filter.range, now);
  if (since) params.set("since", since);
  if (before !== null) params.set("before", String(before));
  params.set("limit", String(limit));
  return `?${params.toString()}`;
}

const decisionLabel: Record<Decision, string> = {
  allow_once: "Allowed once",
  allow_always: "Allowed always",
  reject_once: "Rejected",
  reject_always: "Rejected always",
};

export const channelLabel: Record<DecisionChannel, string> = {
  web: "web",
  desktop_window: "desktop window",
  desktop_notification: "desktop notification",
  phone: "phone",
  policy: "policy",
  cli: "CLI",
};

const actionLabel: Record<string, string> = {
  policy_updated: "Approval policy changed",
  skip_approvals_enabled: "Skip approvals turned ON",
  skip_approvals_disabled: "Skip approvals turned off",
  owner_token_rotated: "Owner token rotated",
};

/** 850 ms, 4.2 s, 3 min, 1.5 h. */
export function latencyText(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = s / 60;
  if (m < 60) return `${Math.round(m)} min`;
  return `${(m / 60).toFixed(1)} h`;
}

/** Who decided, in words: "you", a phone's name, a policy rule, … */
export function actorText(actor: string | null): string {
  if (actor === null) return "";
  if (actor === "owner") return "you";
  if (actor === "skip-approvals") return "skip approvals";
  if (actor === "session-rule") return "a session rule (an earlier “always”)";
  if (actor.startsWith("policy:")) return `policy rule “${actor.slice("policy:".length)}”`;
  return actor;
}

export interface EntryView {
  /** decision | tool_call | admin, for styling. */
  kind: AuditEntry["kind"];
  /** "Allowed once · Bash", "Tool call · Write (completed)", "Approval policy changed". */
  headline: string;
  /** The command, the path, … (may be empty). */
  summary: string;
  /** "by you via web after 4.2 s". */
  meta: string;
  /** The decision allowed, denied, or neither (tool calls, admin). */
  tone: "allow" | "deny" | "neutral" | "warn";
}

export function entryView(e: AuditEntry): EntryView {
  const summary = e.summary ?? "";
  switch (e.kind) {
    case "decision": {
      const decision = e.decision ? decisionLabel[e.decision] : "Decided";
      const parts = [`by ${actorText(e.actor)}`];
      if (e.channel) parts.push(`via ${channelLabel[e.channel]}`);
      if (e.latency_ms !== null) parts.push(`after ${latencyText(e.latency_ms)}`);
      const allows = e.decision === "allow_once" || e.decision === "allow_always";
      return {
        kind: e.kind,
        headline: `${decision}${e.tool ? ` · ${e.tool}` : ""}`,
        summary,
        meta: parts.join(" "),
        tone: allows ? "allow" : "deny",
      };
    }
    case "tool_call":
      return {
        kind: e.kind,
        headline: `Tool call · ${e.tool ?? "?"}${e.outcome ? ` (${e.outcome})` : ""}`,
        summary,
        meta: "",
        tone: e.outcome === "failed" || e.outcome === "denied" ? "deny" : "neutral",
      };
    case "admin": {
      const action = e.action ?? "change";
      return {
        kind: e.kind,
        headline: actionLabel[action] ?? action,
        summary,
        meta: e.actor ? `by ${actorText(e.actor)}` : "",
        tone: action === "skip_approvals_enabled" ? "warn" : "neutral",
      };
    }
  }
}

/** An API error for a person (the hub's message, or "Hub unreachable"). */
export function errorTextOf(e: unknown): string {
  if (e instanceof ApiError) return e.code === "network" ? "Hub unreachable" : e.message || e.code;
  return e instanceof Error ? e.message : String(e);
}

export interface AuditApi {
  audit(query: string): Promise<AuditList>;
}

/**
 * The entries matching a filter, newest first, one page at a time. `load`
 * starts over (a new filter, or a refresh); `more` appends the next older page.
 * A stale answer (the filter changed meanwhile) is dropped.
 */
export class AuditStore extends Observable {
  entries: AuditEntry[] = [];
  hasMore = false;
  loading = false;
  error: string | null = null;
  filter: AuditFilter = { sessionId: null, range: "all" };
  private generation = 0;

  constructor(
    private readonly api: AuditApi,
    private readonly now: () => number = () => Date.now(),
  ) {
    super();
  }

  async load(filter: AuditFilter = this.filter): Promise<void> {
    this.filter = filter;
    this.entries = [];
    this.hasMore = false;
    await this.fetch(null);
  }

  async more(): Promise<void> {
    if (this.loading || !this.hasMore || this.entries.length === 0) return;
    await this.fetch(this.entries[this.entries.length - 1].id);
  }

  private async fetch(before: number | null): Promise<void> {
    const generation = ++this.generation;
    this.loading = true;
    this.error = null;
    this.emit();
    try {
      const page = await this.api.audit(auditQuery(this.filter, this.now(), before));
      if (generation !== this.generation) return;
      const seen = new Set(this.entries.map((e) => e.id));
      this.entries = [...this.entries, ...page.entries.filter((e) => !seen.has(e.id))];
      this.hasMore = page.has_more;
    } catch (e) {
      if (generation !== this.generation) return;
      this.error = errorTextOf(e);
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.emit();
      }
    }
  }
}
