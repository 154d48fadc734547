import { useNow } from "../hub";
import { pendingApprovals, sortedSessions, type HubState } from "../hubState";
import { agentLabel, projectName, relativeTime, shortenCwd } from "../sessionFormat";
import { SkipApprovalsBadge } from "./SkipApprovals";
import { BudgetBadge } from "./Usage";
import { StateBadge } from "./StateBadge";

export function SessionList(props: { state: HubState; selectedId: string | null; onRetry: () => void }) {
  const { state } = props;
  const now = useNow(30_000);
  const sessions = sortedSessions(state);
  const waiting = new Map<string, number>();
  for (const a of pendingApprovals(state)) {
    if (a.session_id !== null) waiting.set(a.session_id, (waiting.get(a.session_id) ?? 0) + 1);
  }

  return (
    <div class="session-list">
      <h2 class="pane-title">Sessions</h2>
      {state.loadError && (
        <div class="banner error" role="alert">
          {state.loadError}{" "}
          <button type="button" class="link" onClick={props.onRetry}>
            Retry
          </button>
        </div>
      )}
      {!state.sessionsLoaded && !state.loadError && <p class="muted pad">Loading sessions…</p>}
      {state.sessionsLoaded && sessions.length === 0 && (
        <p class="muted pad">
          No sessions yet. Start one with <code>hapi claude</code> in a project directory.
        </p>
      )}
      <ul role="list">
        {sessions.map((s) => {
          // Prefer our own count (kept live by approval events); fall back to the session's.
          const count = state.sessionsLoaded ? (waiting.get(s.id) ?? 0) : s.pending_approvals;
          const selected = s.id === props.selectedId;
          return (
            <li key={s.id}>
              <a
                href={`#/session/${encodeURIComponent(s.id)}`}
                class={`session-item ${selected ? "selected" : ""} ${count ? "waiting" : ""}`}
                aria-current={selected ? "page" : undefined}
                data-testid="session-item"
                data-session-id={s.id}
                data-state={s.state}
              >
                <span class="session-main">
                  <span class="session-name">{projectName(s.cwd)}</span>
                  <span class="session-cwd" title={s.cwd}>
                    {shortenCwd(s.cwd)}
                  </span>
                </span>
                <span class="session-meta">
                  <span class="session-badges">
                    {count > 0 && (
                      <span class="count-badge" data-testid="session-pending-count" aria-label={`${count} pending approvals`}>
                        {count}
                      </span>
                    )}
                    {s.skip_approvals && <SkipApprovalsBadge compact />}
                    {s.usage.budget_paused && <BudgetBadge compact />}
                    <StateBadge state={s.state} />
                  </span>
                  <span class="session-sub">
                    {agentLabel(s)} · <time dateTime={s.updated_at}>{relativeTime(s.updated_at, now)}</time>
                  </span>
                </span>
              </a>
            </li>
          );
        })}
      </ul>
    </div>
  );
}
