// The usage components, called as plain functions (they use no hooks) and
// read as Preact's element trees: no DOM needed.
import type { ComponentChildren, VNode } from "preact";
import { describe, expect, it } from "vitest";
import type { Budget } from "./generated/Budget";
import type { SessionUsage } from "./generated/SessionUsage";
import type { SessionUsageSummary } from "./generated/SessionUsageSummary";
import { BudgetBadge, BudgetBanner, BudgetForm, UsagePanel } from "./ui/Usage";
import { UsageStore, type UsageApi } from "./usage";

type Props = Record<string, unknown> & { children?: ComponentChildren };

/** Expands function components, so the tree holds only elements and text. */
function expand(node: ComponentChildren): ComponentChildren {
  if (Array.isArray(node)) return node.map(expand);
  if (node && typeof node === "object" && "type" in node) {
    const v = node as VNode<Props>;
    if (typeof v.type === "function") return expand((v.type as (p: Props) => ComponentChildren)(v.props));
    return { ...v, props: { ...v.props, children: expand(v.props.children) } } as VNode<Props>;
  }
  return node;
}

function text(node: ComponentChildren): string {
  if (node === null || node === undefined || typeof node === "boolean") return "";
  if (typeof node === "string" || typeof node === "number") return String(node);
  if (Array.isArray(node)) return node.map(text).join("");
  return text((node as VNode<Props>).props.children);
}

function all(node: ComponentChildren, pred: (v: VNode<Props>) => boolean, out: VNode<Props>[] = []): VNode<Props>[] {
  if (Array.isArray(node)) node.forEach((n) => all(n, pred, out));
  else if (node && typeof node === "object" && "type" in node) {
    const v = node as VNode<Props>;
    if (pred(v)) out.push(v);
    all(v.props.children, pred, out);
  }
  return out;
}

const byTestId = (tree: ComponentChildren, id: string) => all(tree, (v) => v.props["data-testid"] === id);

class FakeApi implements UsageApi {
  puts: (Budget | null)[] = [];
  stops = 0;
  constructor(public current: SessionUsage) {}
  usage(): Promise<SessionUsage> {
    return Promise.resolve(this.current);
  }
  setBudget(_id: string, budget: Budget | null): Promise<SessionUsage> {
    this.puts.push(budget);
    this.current = { ...this.current, budget, budget_paused: false, paused_reason: null };
    return Promise.resolve(this.current);
  }
  stop(): Promise<void> {
    this.stops += 1;
    return Promise.resolve();
  }
}

const paused: SessionUsageSummary = {
  total_tokens: 240,
  cost_usd: 0.0016,
  budget: { max_tokens: 100, max_cost_usd: null },
  budget_paused: true,
};

const usage: SessionUsage = {
  session_id: "s1",
  models: [
    { model: "claude-haiku", input_tokens: 30, output_tokens: 5, cache_read_tokens: 0, cache_write_tokens: 0, total_tokens: 35, cost_usd: null, updates: 1 },
    { model: "claude-opus", input_tokens: 200, output_tokens: 40, cache_read_tokens: 1000, cache_write_tokens: 0, total_tokens: 1240, cost_usd: 0.0016, updates: 1 },
  ],
  totals: { input_tokens: 230, output_tokens: 45, cache_read_tokens: 1000, cache_write_tokens: 0, total_tokens: 1275, cost_usd: 0.0016 },
  budget: { max_tokens: 100, max_cost_usd: null },
  budget_paused: true,
  paused_reason: "Budget reached: 1275 of 100 tokens",
};

describe("BudgetBanner", () => {
  it("says how far the budget is reached and offers Raise and Stop", async () => {
    const api = new FakeApi(usage);
    const store = new UsageStore(api, "s1");
    const tree = expand(BudgetBanner({ store, summary: paused }));
    expect(text(tree)).toContain("Budget reached: 240 of 100 tokens");
    const raise = byTestId(tree, "budget-raise")[0];
    const stop = byTestId(tree, "budget-stop")[0];
    expect([text(raise), text(stop)]).toEqual(["Raise budget", "Stop session"]);

    (raise.props.onClick as () => void)();
    expect(store.editing).toBe(true);
    expect(store.draft).toEqual({ tokens: "480", cost: "" });
    (stop.props.onClick as () => void)();
    await Promise.resolve();
    expect(api.stops).toBe(1);
  });
});

describe("BudgetForm", () => {
  it("shows the check's error, then sends a valid budget; Clear only with a budget", async () => {
    const api = new FakeApi(usage);
    const store = new UsageStore(api, "s1");
    await store.load();
    store.openEditor({ tokens: "-3", cost: "" });
    let tree = expand(BudgetForm({ store }));
    expect(byTestId(tree, "budget-clear")).toHaveLength(1);
    const form = all(tree, (v) => v.type === "form")[0];
    (form.props.onSubmit as (e: { preventDefault(): void }) => void)({ preventDefault() {} });
    await Promise.resolve();
    tree = expand(BudgetForm({ store }));
    expect(text(byTestId(tree, "budget-error")[0])).toBe("Tokens must be a whole number above zero.");
    expect(api.puts).toEqual([]);

    const tokens = byTestId(tree, "budget-tokens")[0];
    (tokens.props.onInput as (e: { target: { value: string } }) => void)({ target: { value: "5,000" } });
    expect(await store.save()).toBe(true);
    expect(api.puts).toEqual([{ max_tokens: 5000, max_cost_usd: null }]);

    await store.clear();
    store.openEditor();
    tree = expand(BudgetForm({ store }));
    expect(byTestId(tree, "budget-clear")).toHaveLength(0);
  });
});

describe("UsagePanel", () => {
  it("lists tokens by model with cost where known, and the budget", async () => {
    const store = new UsageStore(new FakeApi(usage), "s1");
    await store.load();
    const summary: SessionUsageSummary = { ...paused, total_tokens: 1275 };
    const tree = expand(UsagePanel({ store, summary }));
    const line = all(tree, (v) => v.type === "summary")[0];
    expect(text(line)).toBe("1.3k tokens · $0.0016 · budget 100 tokens");
    const rows = byTestId(tree, "usage-model").map(text);
    expect(rows).toEqual([
      "claude-haiku30 in5 out35 total",
      "claude-opus200 in40 out1,000 cache read1,240 total$0.0016",
    ]);
    expect(text(byTestId(tree, "usage-budget")[0])).toBe("100 tokens");
    expect(text(byTestId(tree, "budget-edit")[0])).toBe("Change");
  });

  it("says when nothing was reported and offers to set a budget", () => {
    const store = new UsageStore(new FakeApi({ ...usage, models: [] }), "s1");
    const tree = expand(UsagePanel({ store, summary: { total_tokens: 0, cost_usd: null, budget: null, budget_paused: false } }));
    expect(text(tree)).toContain("No tokens reported yet.");
    expect(text(byTestId(tree, "usage-budget")[0])).toBe("no budget");
    expect(text(byTestId(tree, "budget-edit")[0])).toBe("Set budget");
  });

  it("badges a paused session", () => {
    expect(text(expand(BudgetBadge({})))).toBe("Budget reached");
    expect(text(expand(BudgetBadge({ compact: true })))).toBe("budget reached");
  });
});
