import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { reduceConversation } from "../conversation";
import type { DesktopSettingsStore } from "../desktop";
import { DECIDED_CARD_MS, errorText, useNow, type HubStore } from "../hub";
import { emptyHistory, visibleApprovals, type HubState } from "../hubState";
import { agentLabel, projectName } from "../sessionFormat";
import { ApprovalCard } from "./ApprovalCard";
import { Composer } from "./Composer";
import { Conversation } from "./Conversation";
import { SessionNotifyToggle } from "./DesktopSettings";
import { SkipApprovalsBadge, SkipApprovalsBanner, SkipApprovalsPrompt, SkipApprovalsToggle, useSkipApprovals } from "./SkipApprovals";
import { StateBadge } from "./StateBadge";
import { BudgetBadge, BudgetBanner, BudgetForm, UsagePanel, useUsageStore } from "./Usage";
import { hashForAudit } from "../routing";

const NEAR_BOTTOM_PX = 80;

export function SessionView(props: {
  store: HubStore;
  state: HubState;
  sessionId: string;
  /** The desktop app's settings (per-session "Notify"); null in a plain browser. */
  desktop?: DesktopSettingsStore | null;
  /** The owner (not a paired phone): may switch "skip approvals" and open the audit log. */
  owner?: boolean;
}) {
  const { store, state, sessionId, desktop, owner } = props;
  const session = state.sessions[sessionId];
  const skip = useSkipApprovals(store.api, sessionId);
  const skipping = session?.skip_approvals ?? false;
  const usage = useUsageStore(store.api, sessionId, session);
  const paused = session?.usage.budget_paused ?? false;
  const history = state.histories[sessionId] ?? emptyHistory;
  const now = useNow(1000);
  const items = useMemo(() => reduceConversation(history.messages), [history.messages]);
  const cards = visibleApprovals(state, sessionId, now, DECIDED_CARD_MS);
  const [abortState, setAbortState] = useState<{ busy: boolean; error: string | null }>({ busy: false, error: null });
  const [notifyError, setNotifyError] = useState<string | null>(null);

  useEffect(() => {
    void store.openSession(sessionId);
  }, [store, sessionId]);

  // Scrolling: stay pinned to the bottom while the user is there; keep the
  // visible content still when older history is prepended.
  const scroller = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  const prevHeight = useRef(0);
  const prevFirstSeq = useRef<number | null>(null);
  const firstSeq = history.messages.length ? history.messages[0].seq : null;

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (prevFirstSeq.current !== null && firstSeq !== null && firstSeq < prevFirstSeq.current) {
      el.scrollTop += el.scrollHeight - prevHeight.current;
    } else if (pinned.current) {
      el.scrollTop = el.scrollHeight;
    }
    prevHeight.current = el.scrollHeight;
    prevFirstSeq.current = firstSeq;
  }, [items, cards.length, firstSeq]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
    if (el.scrollTop < 120 && history.hasOlder && !history.loadingOlder) void store.loadOlder(sessionId);
  };

  const abort = async () => {
    setAbortState({ busy: true, error: null });
    try {
      await store.api.abort(sessionId);
      setAbortState({ busy: false, error: null });
    } catch (e) {
      setAbortState({ busy: false, error: errorText(e) });
    }
  };

  return (
    <section class="session-view" aria-label="Session">
      <div class={`session-header ${desktop || owner ? "with-notify" : ""}`}>
        <a class="back" href="#/" aria-label="Back to sessions">
          ‹ Sessions
        </a>
        <div class="session-title">
          <h2>{session ? projectName(session.cwd) : "Session"}</h2>
          {session && (
            <span class="session-cwd" title={session.cwd}>
              {agentLabel(session)} · {session.cwd}
            </span>
          )}
        </div>
        {skipping && <SkipApprovalsBadge />}
        {paused && <BudgetBadge />}
        {session && <StateBadge state={session.state} />}
        {owner && session && <SkipApprovalsToggle control={skip} enabled={skipping} />}
        {owner && (
          <a class="header-link" href={hashForAudit(sessionId)} title="This session's audit log" data-testid="session-audit-link">
            Audit
          </a>
        )}
        {desktop && <SessionNotifyToggle store={desktop} sessionId={sessionId} onError={setNotifyError} />}
        {session?.state === "working" && (
          <button type="button" class="danger" onClick={abort} disabled={abortState.busy} data-testid="abort">
            {abortState.busy ? "Aborting…" : "Abort"}
          </button>
        )}
      </div>
      {skipping && <SkipApprovalsBanner />}
      {/* An ended session takes no prompts anyway: no banner asking to raise its budget. */}
      {session && paused && session.state !== "ended" && <BudgetBanner store={usage} summary={session.usage} />}
      {usage.editing && <BudgetForm store={usage} />}
      {session && <UsagePanel store={usage} summary={session.usage} />}
      {owner && <SkipApprovalsPrompt control={skip} enabled={skipping} />}
      {abortState.error && (
        <div class="banner error" role="alert">
          Abort failed: {abortState.error}
        </div>
      )}
      {notifyError && (
        <div class="banner error" role="alert" data-testid="session-notifications-error">
          {notifyError}
        </div>
      )}
      <div class="conversation-scroll" ref={scroller} onScroll={onScroll}>
        {history.hasOlder && (
          <div class="older">
            <button type="button" class="link" onClick={() => void store.loadOlder(sessionId)} disabled={history.loadingOlder}>
              {history.loadingOlder ? "Loading…" : "Load earlier messages"}
            </button>
          </div>
        )}
        {!history.loaded && history.loadingOlder && <p class="muted pad">Loading conversation…</p>}
        {history.error && (
          <div class="banner error" role="alert">
            {history.error}{" "}
            <button type="button" class="link" onClick={() => store.retrySession(sessionId)}>
              Retry
            </button>
          </div>
        )}
        {history.loaded && items.length === 0 && <p class="muted pad">Nothing here yet.</p>}
        <Conversation items={items} />
        {cards.length > 0 && (
          <div class="approvals" aria-label="Pending approvals">
            {cards.map((a) => (
              <ApprovalCard key={a.id} approval={a} store={store} />
            ))}
          </div>
        )}
      </div>
      <Composer store={store} sessionId={sessionId} session={session} />
    </section>
  );
}
