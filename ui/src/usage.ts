// A session's token usage and budget: formatting, the budget form's checks
// (the same as the hub's: a positive whole number of tokens, a positive cost),
// and the store behind the usage panel and the "Budget reached" banner.
import { errorTextOf } from "./audit";
import type { Budget } from "./generated/Budget";
import type { SessionUsage } from "./generated/SessionUsage";
import type { SessionUsageSummary } from "./generated/SessionUsageSummary";
import type { Usage } from "./generated/Usage";
import { Observable } from "./observable";

export interface UsageApi {
  usage(sessionId: string): Promise<SessionUsage>;
  setBudget(sessionId: string, budget: Budget | null): Promise<SessionUsage>;
  stop(sessionId: string): Promise<void>;
}

/** Tokens with thousands separators: `12,345`. */
export function formatTokens(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Compact tokens for badges and headers: `950`, `12.3k`, `4.5M`. */
export function compactTokens(n: number): string {
  if (n < 1000) return String(Math.round(n));
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0).replace(/\.0$/, "")}k`;
  return `${(n / 1_000_000).toFixed(1).replace(/\.0$/, "")}M`;
}

/** US dollars: four decimals under a dollar (turns cost fractions of a cent), else two. */
export function formatCost(usd: number | null | undefined): string | null {
  if (usd === null || usd === undefined || !Number.isFinite(usd)) return null;
  return `$${usd.toFixed(usd < 1 ? 4 : 2)}`;
}

/** A limit in dollars as typed: `$0.50`, `$5.00`, `$0.0125`. */
export function formatLimit(usd: number): string {
  return `$${usd.toFixed(Math.abs(usd * 100 - Math.round(usd * 100)) < 1e-9 ? 2 : 4)}`;
}

/** `10,000 tokens · $0.50`, or `no budget`. */
export function budgetText(budget: Budget | null): string {
  if (!budget) return "no budget";
  const parts: string[] = [];
  if (budget.max_tokens !== null) parts.push(`${formatTokens(budget.max_tokens)} tokens`);
  if (budget.max_cost_usd !== null) parts.push(formatLimit(budget.max_cost_usd));
  return parts.join(" · ");
}

/**
 * What the banner of a paused session says: which limit was reached, as
 * `Budget reached: 1,200 of 1,000 tokens` (or the cost), from the session's
 * summary alone so it shows without another request.
 */
export function pausedText(summary: SessionUsageSummary): string {
  const b = summary.budget;
  if (b?.max_tokens !== null && b?.max_tokens !== undefined && summary.total_tokens >= b.max_tokens) {
    return `Budget reached: ${formatTokens(summary.total_tokens)} of ${formatTokens(b.max_tokens)} tokens`;
  }
  if (b?.max_cost_usd !== null && b?.max_cost_usd !== undefined && summary.cost_usd !== null) {
    return `Budget reached: ${formatCost(summary.cost_usd)} of ${formatLimit(b.max_cost_usd)}`;
  }
  return "Budget reached";
}

/** What the budget form holds: text, as typed. */
export interface BudgetDraft {
  tokens: string;
  cost: string;
}

export type ParsedBudget = { budget: Budget; error: null } | { budget: null; error: string };

/** Checks the form the way the hub does, so a bad value is caught before sending. */
export function parseBudget(draft: BudgetDraft): ParsedBudget {
  const tokensText = draft.tokens.replace(/[\s,_]/g, "");
  const costText = draft.cost.trim().replace(/^\$/, "");
  if (!tokensText && !costText) {
    return { budget: null, error: "Enter a token limit, a cost limit, or both (Clear removes the budget)." };
  }
  let max_tokens: number | null = null;
  if (tokensText) {
    if (!/^\d+$/.test(tokensText)) return { budget: null, error: "Tokens must be a whole number above zero." };
    max_tokens = Number(tokensText);
    if (max_tokens <= 0 || !Number.isSafeInteger(max_tokens)) {
      return { budget: null, error: "Tokens must be a whole number above zero." };
    }
  }
  let max_cost_usd: number | null = null;
  if (costText) {
    max_cost_usd = /^\d*\.?\d+$|^\d+\.$/.test(costText) ? Number(costText) : NaN;
    if (!Number.isFinite(max_cost_usd) || max_cost_usd <= 0) {
      return { budget: null, error: "Cost must be a number of dollars above zero." };
    }
  }
  return { budget: { max_tokens, max_cost_usd }, error: null };
}

/** The form's text for a budget (empty fields for limits not set). */
export function draftOf(budget: Budget | null): BudgetDraft {
  return {
    tokens: budget?.max_tokens !== null && budget?.max_tokens !== undefined ? String(budget.max_tokens) : "",
    cost: budget?.max_cost_usd !== null && budget?.max_cost_usd !== undefined ? String(budget.max_cost_usd) : "",
  };
}

/**
 * "Raise budget" starts from twice what was used (at least twice the old
 * limit), so one click and Save lets the session go on.
 */
export function raisedDraft(summary: SessionUsageSummary): BudgetDraft {
  const b = summary.budget;
  const tokens =
    b?.max_tokens !== null && b?.max_tokens !== undefined ? Math.max(b.max_tokens * 2, summary.total_tokens * 2) : null;
  const cost =
    b?.max_cost_usd !== null && b?.max_cost_usd !== undefined
      ? Math.max(b.max_cost_usd * 2, (summary.cost_usd ?? 0) * 2)
      : null;
  return {
    tokens: tokens === null ? "" : String(tokens),
    cost: cost === null ? "" : String(Math.ceil(cost * 100) / 100),
  };
}

/** Every token of an update: input, output, cache reads and writes (what a budget counts). */
export function usageTokens(u: Usage): number {
  return u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens;
}

/** A turn's usage updates (one per model) added up; the cost is known if any update had one. */
export function sumUsage(a: Usage | null, b: Usage): Usage {
  if (!a) return b;
  return {
    model: a.model === b.model ? a.model : "several models",
    input_tokens: a.input_tokens + b.input_tokens,
    output_tokens: a.output_tokens + b.output_tokens,
    cache_read_tokens: a.cache_read_tokens + b.cache_read_tokens,
    cache_write_tokens: a.cache_write_tokens + b.cache_write_tokens,
    cost_usd: a.cost_usd === null && b.cost_usd === null ? null : (a.cost_usd ?? 0) + (b.cost_usd ?? 0),
  };
}

/** The usage panel of one session: the per-model rows, the budget form, Stop. */
export class UsageStore extends Observable {
  usage: SessionUsage | null = null;
  loadError: string | null = null;
  editing = false;
  draft: BudgetDraft = { tokens: "", cost: "" };
  saving = false;
  formError: string | null = null;
  stopping = false;
  stopError: string | null = null;

  constructor(
    private readonly api: UsageApi,
    readonly sessionId: string,
  ) {
    super();
  }

  /** (Re)reads the per-model usage; the session's events say when it changed. */
  async load(): Promise<void> {
    try {
      this.usage = await this.api.usage(this.sessionId);
      this.loadError = null;
    } catch (e) {
      this.loadError = errorTextOf(e);
    }
    this.emit();
  }

  /** Opens the budget form with `draft`, or with the current budget. */
  openEditor(draft?: BudgetDraft): void {
    this.editing = true;
    this.draft = draft ?? draftOf(this.usage?.budget ?? null);
    this.formError = null;
    this.emit();
  }

  closeEditor(): void {
    this.editing = false;
    this.formError = null;
    this.emit();
  }

  edit(draft: BudgetDraft): void {
    this.draft = draft;
    this.formError = null;
    this.emit();
  }

  /** Sends the form's budget; false (with `formError`) when it is invalid or refused. */
  save(): Promise<boolean> {
    const parsed = parseBudget(this.draft);
    if (parsed.error !== null) {
      this.formError = parsed.error;
      this.emit();
      return Promise.resolve(false);
    }
    return this.put(parsed.budget);
  }

  /** Removes the budget (and with it a pause). */
  clear(): Promise<boolean> {
    return this.put(null);
  }

  private async put(budget: Budget | null): Promise<boolean> {
    if (this.saving) return false;
    this.saving = true;
    this.formError = null;
    this.emit();
    try {
      this.usage = await this.api.setBudget(this.sessionId, budget);
      this.editing = false;
      return true;
    } catch (e) {
      this.formError = errorTextOf(e);
      return false;
    } finally {
      this.saving = false;
      this.emit();
    }
  }

  /** "Stop session": the same stop as everywhere (the agent ends). */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopError = null;
    this.emit();
    try {
      await this.api.stop(this.sessionId);
    } catch (e) {
      this.stopError = errorTextOf(e);
    } finally {
      this.stopping = false;
      this.emit();
    }
  }
}
