import { describe, expect, it } from "vitest";
import { ApiError } from "./api";
import { reduceConversation } from "./conversation";
import type { Budget } from "./generated/Budget";
import type { SessionUsage } from "./generated/SessionUsage";
import type { SessionUsageSummary } from "./generated/SessionUsageSummary";
import type { Usage } from "./generated/Usage";
import { msg } from "./testFixtures";
import {
  budgetText,
  compactTokens,
  draftOf,
  formatCost,
  formatTokens,
  parseBudget,
  pausedText,
  raisedDraft,
  UsageStore,
  type UsageApi,
} from "./usage";

const summary = (over: Partial<SessionUsageSummary> = {}): SessionUsageSummary => ({
  total_tokens: 0,
  cost_usd: null,
  budget: null,
  budget_paused: false,
  ...over,
});

const usage = (over: Partial<SessionUsage> = {}): SessionUsage => ({
  session_id: "s1",
  models: [],
  totals: { input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, total_tokens: 0, cost_usd: null },
  budget: null,
  budget_paused: false,
  paused_reason: null,
  ...over,
});

const turn = (model: string, input: number, output: number, cost: number | null): Usage => ({
  model,
  input_tokens: input,
  output_tokens: output,
  cache_read_tokens: 0,
  cache_write_tokens: 0,
  cost_usd: cost,
});

/** A fake hub: records budgets put, answers like the hub (400 for a refused one). */
class FakeApi implements UsageApi {
  puts: (Budget | null)[] = [];
  stops = 0;
  current = usage();
  failNext: ApiError | null = null;
  usage(): Promise<SessionUsage> {
    return Promise.resolve(this.current);
  }
  setBudget(_id: string, budget: Budget | null): Promise<SessionUsage> {
    if (this.failNext) {
      const e = this.failNext;
      this.failNext = null;
      return Promise.reject(e);
    }
    this.puts.push(budget);
    this.current = { ...this.current, budget, budget_paused: false, paused_reason: null };
    return Promise.resolve(this.current);
  }
  stop(): Promise<void> {
    this.stops += 1;
    return Promise.resolve();
  }
}

describe("usage formatting", () => {
  it("shows tokens, compact tokens and cost", () => {
    expect(formatTokens(1234567)).toBe("1,234,567");
    expect([compactTokens(950), compactTokens(1500), compactTokens(12_345), compactTokens(4_500_000)]).toEqual([
      "950",
      "1.5k",
      "12k",
      "4.5M",
    ]);
    expect([formatCost(0.0016), formatCost(12.5), formatCost(null)]).toEqual(["$0.0016", "$12.50", null]);
    expect(budgetText({ max_tokens: 10000, max_cost_usd: 0.5 })).toBe("10,000 tokens · $0.50");
    expect(budgetText({ max_tokens: null, max_cost_usd: 0.0125 })).toBe("$0.0125");
    expect(budgetText(null)).toBe("no budget");
  });

  it("says which limit paused the session", () => {
    const tokens = summary({ total_tokens: 1200, budget: { max_tokens: 1000, max_cost_usd: null }, budget_paused: true });
    expect(pausedText(tokens)).toBe("Budget reached: 1,200 of 1,000 tokens");
    const cost = summary({ total_tokens: 10, cost_usd: 0.52, budget: { max_tokens: 1000, max_cost_usd: 0.5 }, budget_paused: true });
    expect(pausedText(cost)).toBe("Budget reached: $0.5200 of $0.50");
  });

  it("adds a turn's per-model updates into its turn end", () => {
    const items = reduceConversation([
      msg(1, { kind: "usage_update", usage: turn("opus", 100, 20, 0.5) }),
      msg(2, { kind: "usage_update", usage: turn("haiku", 30, 5, null) }),
      msg(3, { kind: "turn_end", stop_reason: "end_turn", is_error: false }),
      msg(4, { kind: "turn_end", stop_reason: "end_turn", is_error: false }),
    ]);
    expect(items[0]).toMatchObject({ usage: { input_tokens: 130, output_tokens: 25, cost_usd: 0.5 } });
    expect(items[1]).toMatchObject({ usage: null });
  });
});

describe("the budget form", () => {
  it("takes positive whole tokens and a positive cost, like the hub", () => {
    expect(parseBudget({ tokens: "500,000", cost: "" })).toEqual({ budget: { max_tokens: 500000, max_cost_usd: null }, error: null });
    expect(parseBudget({ tokens: "", cost: "$2.50" })).toEqual({ budget: { max_tokens: null, max_cost_usd: 2.5 }, error: null });
    expect(parseBudget({ tokens: "1000", cost: ".5" }).budget).toEqual({ max_tokens: 1000, max_cost_usd: 0.5 });
    for (const tokens of ["0", "-5", "1.5", "abc", "1e6"]) {
      expect(parseBudget({ tokens, cost: "" }).error).toBe("Tokens must be a whole number above zero.");
    }
    for (const cost of ["0", "-1", "cheap", "1.2.3"]) {
      expect(parseBudget({ tokens: "", cost }).error).toBe("Cost must be a number of dollars above zero.");
    }
    expect(parseBudget({ tokens: " ", cost: "" }).error).toMatch(/^Enter a token limit/);
  });

  it("starts from the current budget, and Raise from twice what was used", () => {
    expect(draftOf({ max_tokens: 1000, max_cost_usd: null })).toEqual({ tokens: "1000", cost: "" });
    expect(draftOf(null)).toEqual({ tokens: "", cost: "" });
    const reached = summary({ total_tokens: 1200, cost_usd: 0.3, budget: { max_tokens: 1000, max_cost_usd: 0.25 } });
    expect(raisedDraft(reached)).toEqual({ tokens: "2400", cost: "0.6" });
    // The raised draft is a valid budget above the usage.
    const parsed = parseBudget(raisedDraft(reached));
    expect(parsed.budget!.max_tokens!).toBeGreaterThan(1200);
  });
});

describe("UsageStore", () => {
  it("loads the per-model rows", async () => {
    const api = new FakeApi();
    api.current = usage({
      models: [{ model: "opus", input_tokens: 1, output_tokens: 2, cache_read_tokens: 0, cache_write_tokens: 0, total_tokens: 3, cost_usd: null, updates: 1 }],
    });
    const store = new UsageStore(api, "s1");
    let changes = 0;
    store.subscribe(() => changes++);
    await store.load();
    expect(store.usage?.models.map((m) => m.model)).toEqual(["opus"]);
    expect(changes).toBeGreaterThan(0);
  });

  it("never sends an invalid budget, sends a valid one, and clears", async () => {
    const api = new FakeApi();
    const store = new UsageStore(api, "s1");
    store.openEditor();
    store.edit({ tokens: "0", cost: "" });
    expect(await store.save()).toBe(false);
    expect(store.formError).toBe("Tokens must be a whole number above zero.");
    expect(api.puts).toEqual([]);
    expect(store.editing).toBe(true);

    store.edit({ tokens: "2000", cost: "" });
    expect(await store.save()).toBe(true);
    expect(api.puts).toEqual([{ max_tokens: 2000, max_cost_usd: null }]);
    expect(store.editing).toBe(false);
    expect(store.usage?.budget).toEqual({ max_tokens: 2000, max_cost_usd: null });

    expect(await store.clear()).toBe(true);
    expect(api.puts[1]).toBeNull();
    expect(store.usage?.budget).toBeNull();
  });

  it("shows the hub's refusal and keeps the form open", async () => {
    const api = new FakeApi();
    api.failNext = new ApiError(400, "invalid_request", "`max_tokens` must be above zero");
    const store = new UsageStore(api, "s1");
    store.openEditor({ tokens: "5", cost: "" });
    expect(await store.save()).toBe(false);
    expect(store.formError).toBe("`max_tokens` must be above zero");
    expect(store.editing).toBe(true);
  });

  it("Raise opens the form prefilled; Stop stops the session once", async () => {
    const api = new FakeApi();
    const store = new UsageStore(api, "s1");
    store.openEditor(raisedDraft(summary({ total_tokens: 300, budget: { max_tokens: 100, max_cost_usd: null } })));
    expect(store.draft).toEqual({ tokens: "600", cost: "" });
    const first = store.stop();
    const second = store.stop(); // a double click
    await Promise.all([first, second]);
    expect(api.stops).toBe(1);
    expect(store.stopping).toBe(false);
  });
});
