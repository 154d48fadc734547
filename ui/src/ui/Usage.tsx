import { useEffect, useMemo, useState } from "preact/hooks";
import type { Session } from "../generated/Session";
import type { SessionUsageSummary } from "../generated/SessionUsageSummary";
import {
  budgetText,
  compactTokens,
  formatCost,
  formatTokens,
  pausedText,
  raisedDraft,
  UsageStore,
  type UsageApi,
} from "../usage";

/**
 * The usage store of one session. It re-reads the per-model rows whenever the
 * session (from its events) says the totals, the budget or the pause changed.
 */
export function useUsageStore(api: UsageApi, sessionId: string, session: Session | undefined): UsageStore {
  const store = useMemo(() => new UsageStore(api, sessionId), [api, sessionId]);
  const [, setTick] = useState(0);
  useEffect(() => store.subscribe(() => setTick((n) => n + 1)), [store]);
  const u = session?.usage;
  const key = u ? `${u.total_tokens}|${u.cost_usd}|${u.budget?.max_tokens}|${u.budget?.max_cost_usd}|${u.budget_paused}` : "";
  useEffect(() => {
    void store.load();
  }, [store, key]);
  return store;
}

/** Where the session shows: its budget paused it. */
export function BudgetBadge(props: { compact?: boolean }) {
  return (
    <span class="budget-badge" data-testid="budget-badge" title="The session's budget is reached: it takes no prompts until the budget is raised">
      {props.compact ? "budget reached" : "Budget reached"}
    </span>
  );
}

/** "Budget reached: N of M tokens — Raise budget / Stop session". */
export function BudgetBanner(props: { store: UsageStore; summary: SessionUsageSummary }) {
  const { store, summary } = props;
  return (
    <div class="banner warn budget-banner" role="alert" data-testid="budget-banner">
      <p>
        <strong>{pausedText(summary)}</strong>. The session is paused: its turn was interrupted (if one was running) and
        it takes no prompts until you raise or clear the budget.
      </p>
      <div class="budget-actions">
        <button type="button" class="primary" onClick={() => store.openEditor(raisedDraft(summary))} data-testid="budget-raise">
          Raise budget
        </button>
        <button type="button" class="danger" onClick={() => void store.stop()} disabled={store.stopping} data-testid="budget-stop">
          {store.stopping ? "Stopping…" : "Stop session"}
        </button>
      </div>
      {store.stopError && <p class="budget-error">Stop failed: {store.stopError}</p>}
    </div>
  );
}

/** The budget form: a token limit, a cost limit, or both. */
export function BudgetForm(props: { store: UsageStore }) {
  const { store } = props;
  const hasBudget = store.usage?.budget !== null && store.usage?.budget !== undefined;
  return (
    <form
      class="budget-form"
      aria-label="Session budget"
      data-testid="budget-form"
      onSubmit={(e) => {
        e.preventDefault();
        void store.save();
      }}
    >
      <label>
        <span>Max tokens</span>
        <input
          inputMode="numeric"
          autoComplete="off"
          placeholder="e.g. 500000"
          value={store.draft.tokens}
          onInput={(e) => store.edit({ ...store.draft, tokens: (e.target as HTMLInputElement).value })}
          data-testid="budget-tokens"
        />
      </label>
      <label>
        <span>Max cost ($)</span>
        <input
          inputMode="decimal"
          autoComplete="off"
          placeholder="e.g. 5"
          value={store.draft.cost}
          onInput={(e) => store.edit({ ...store.draft, cost: (e.target as HTMLInputElement).value })}
          data-testid="budget-cost"
        />
      </label>
      <div class="budget-actions">
        <button type="submit" class="primary" disabled={store.saving} data-testid="budget-save">
          {store.saving ? "Saving…" : "Save"}
        </button>
        {hasBudget && (
          <button type="button" onClick={() => void store.clear()} disabled={store.saving} data-testid="budget-clear">
            Clear budget
          </button>
        )}
        <button type="button" onClick={() => store.closeEditor()} disabled={store.saving}>
          Cancel
        </button>
      </div>
      {store.formError && (
        <p class="budget-error" role="alert" data-testid="budget-error">
          {store.formError}
        </p>
      )}
    </form>
  );
}

/** Tokens by model and cost, collapsed to one line; the budget and its controls inside. */
export function UsagePanel(props: { store: UsageStore; summary: SessionUsageSummary }) {
  const { store, summary } = props;
  const rows = store.usage?.models ?? [];
  const cost = formatCost(summary.cost_usd);
  return (
    <details class="usage-panel" data-testid="usage-panel">
      <summary>
        <span class="usage-line">
          {compactTokens(summary.total_tokens)} tokens{cost ? ` · ${cost}` : ""}
          {summary.budget ? ` · budget ${budgetText(summary.budget)}` : ""}
        </span>
      </summary>
      <div class="usage-body">
        {store.loadError && <p class="budget-error">Usage could not be read: {store.loadError}</p>}
        {rows.length === 0 ? (
          <p class="muted">No tokens reported yet.</p>
        ) : (
          <ul class="usage-models" aria-label="Tokens by model">
            {rows.map((m) => (
              <li key={m.model} data-testid="usage-model">
                <strong class="usage-model-name">{m.model}</strong>
                <span>{formatTokens(m.input_tokens)} in</span>
                <span>{formatTokens(m.output_tokens)} out</span>
                {m.cache_read_tokens > 0 && <span>{formatTokens(m.cache_read_tokens)} cache read</span>}
                {m.cache_write_tokens > 0 && <span>{formatTokens(m.cache_write_tokens)} cache write</span>}
                <span class="usage-model-total">{formatTokens(m.total_tokens)} total</span>
                {m.cost_usd !== null && <span>{formatCost(m.cost_usd)}</span>}
              </li>
            ))}
          </ul>
        )}
        <div class="usage-budget">
          <span>
            Budget: <strong data-testid="usage-budget">{budgetText(summary.budget)}</strong>
          </span>
          {!store.editing && (
            <button type="button" onClick={() => store.openEditor()} data-testid="budget-edit">
              {summary.budget ? "Change" : "Set budget"}
            </button>
          )}
        </div>
      </div>
    </details>
  );
}
