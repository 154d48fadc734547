import { useEffect, useMemo, useState } from "preact/hooks";
import type { HubApi } from "../api";
import { AUDIT_RANGES, AuditStore, entryView, type AuditFilter, type AuditRange } from "../audit";
import { useNow } from "../hub";
import { sortedSessions, type HubState } from "../hubState";
import { hashForAudit, hashForSession, POLICY_HASH } from "../routing";
import { projectName, relativeTime } from "../sessionFormat";

/** The audit log (owner only): decisions, mutating tool calls, policy changes; newest first. */
export function AuditView(props: { api: HubApi; state: HubState; sessionId: string | null }) {
  const { state, sessionId } = props;
  const store = useMemo(() => new AuditStore(props.api), [props.api]);
  const [, setTick] = useState(0);
  useEffect(() => store.subscribe(() => setTick((n) => n + 1)), [store]);
  const [range, setRange] = useState<AuditRange>("all");
  const filter: AuditFilter = { sessionId, range };
  useEffect(() => {
    void store.load({ sessionId, range });
  }, [store, sessionId, range]);
  const now = useNow(30_000);
  const sessions = sortedSessions(state);
  const sessionName = (id: string) => {
    const s = state.sessions[id];
    return s ? `${projectName(s.cwd)} (${id.slice(-6)})` : id.slice(-12);
  };

  return (
    <section class="audit-view" aria-label="Audit log" data-testid="audit-view">
      <div class="view-header">
        <a class="back" href="#/" aria-label="Back to sessions">
          ‹ Sessions
        </a>
        <h2>Audit log</h2>
        <span class="spacer" />
        <a class="button" href={POLICY_HASH} data-testid="open-policy">
          Policy
        </a>
      </div>
      <div class="audit-filters">
        <label>
          <span>Session</span>
          <select
            data-testid="audit-session-filter"
            value={sessionId ?? ""}
            onChange={(e) => {
              const id = (e.currentTarget as HTMLSelectElement).value;
              window.location.hash = hashForAudit(id || null);
            }}
          >
            <option value="">All sessions</option>
            {sessionId && !state.sessions[sessionId] && <option value={sessionId}>{sessionName(sessionId)}</option>}
            {sessions.map((s) => (
              <option key={s.id} value={s.id}>
                {sessionName(s.id)}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Since</span>
          <select
            data-testid="audit-range-filter"
            value={range}
            onChange={(e) => setRange((e.currentTarget as HTMLSelectElement).value as AuditRange)}
          >
            {AUDIT_RANGES.map((r) => (
              <option key={r.value} value={r.value}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => void store.load(filter)} disabled={store.loading}>
          Refresh
        </button>
      </div>
      <div class="audit-scroll">
        {store.error && (
          <div class="banner error" role="alert" data-testid="audit-error">
            {store.error}{" "}
            <button type="button" class="link" onClick={() => void store.load(filter)}>
              Retry
            </button>
          </div>
        )}
        {!store.loading && !store.error && store.entries.length === 0 && (
          <p class="muted pad" data-testid="audit-empty">
            Nothing recorded{sessionId ? " for this session" : ""}
            {range === "all" ? "" : " in this period"}.
          </p>
        )}
        <ol class="audit-list">
          {store.entries.map((e) => {
            const v = entryView(e);
            return (
              <li key={e.id} class={`audit-row audit-${v.kind} tone-${v.tone}`} data-testid="audit-row" data-kind={e.kind}>
                <div class="audit-line">
                  <span class="audit-headline">{v.headline}</span>
                  <time dateTime={e.at} title={new Date(e.at).toLocaleString()}>
                    {relativeTime(e.at, now)}
                  </time>
                </div>
                {v.summary && <code class="audit-summary">{v.summary}</code>}
                <div class="audit-meta">
                  {v.meta && <span>{v.meta}</span>}
                  {e.session_id && !sessionId && (
                    <a href={hashForAudit(e.session_id)} title="Only this session's entries">
                      {sessionName(e.session_id)}
                    </a>
                  )}
                  {e.session_id && sessionId && <a href={hashForSession(e.session_id)}>Open session</a>}
                </div>
              </li>
            );
          })}
        </ol>
        {store.loading && <p class="muted pad">Loading…</p>}
        {store.hasMore && !store.loading && (
          <div class="older">
            <button type="button" onClick={() => void store.more()} data-testid="audit-more">
              Load older entries
            </button>
          </div>
        )}
      </div>
    </section>
  );
}
