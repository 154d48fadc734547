// How sessions are labelled in the list and the header of a session.
import type { Session } from "./generated/Session";
import type { SessionState } from "./generated/SessionState";

/** `/home/ann/src/project/app` → `…/project/app`; home dirs become `~`. */
export function shortenCwd(cwd: string, maxParts = 2): string {
  let path = cwd.replace(/^\/(home|Users)\/[^/]+/, "~");
  const parts = path.split("/").filter(Boolean);
  if (parts.length > maxParts + (parts[0] === "~" ? 1 : 0)) {
    path = "…/" + parts.slice(-maxParts).join("/");
  }
  return path || "/";
}

export function projectName(cwd: string): string {
  const parts = cwd.split("/").filter(Boolean);
  return parts.length ? parts[parts.length - 1] : "/";
}

export const stateLabel: Record<SessionState, string> = {
  starting: "starting",
  idle: "idle",
  working: "working",
  disconnected: "disconnected",
  ended: "ended",
};

export function agentLabel(session: Session): string {
  return session.agent === "claude" ? "Claude Code" : session.agent;
}

/** "just now", "5 min ago", "3 h ago", else a short date. */
export function relativeTime(iso: string, now: number): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  const h = Math.round(m / 60);
  if (h < 24) return `${h} h ago`;
  return new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" });
}
