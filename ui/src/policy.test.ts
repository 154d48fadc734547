import { describe, expect, it } from "vitest";
import { ApiError } from "./api";
import type { PolicyDocument } from "./generated/PolicyDocument";
import { offsetOfLine, policyProblem, PolicyStore, problemText } from "./policy";

const doc = (text: string, rules = 0): PolicyDocument => ({
  path: "/home/ann/.hapi/policy.toml",
  text,
  rules: Array.from({ length: rules }, (_, i) => ({
    name: `r${i}`,
    action: "allow",
    agent: null,
    tools: [],
    commands: [],
    paths: [],
  })),
});

describe("policy problems", () => {
  it("read the hub's line and column", () => {
    const p = policyProblem("line 3, column 10: unknown variant `alow`, expected one of `allow`, `deny`, `ask`");
    expect(p).toEqual({ line: 3, column: 10, reason: "unknown variant `alow`, expected one of `allow`, `deny`, `ask`" });
    expect(problemText(p)).toBe("Line 3, column 10: unknown variant `alow`, expected one of `allow`, `deny`, `ask`");
    expect(policyProblem("Hub unreachable")).toEqual({ line: null, column: null, reason: "Hub unreachable" });
    expect(problemText(policyProblem("Hub unreachable"))).toBe("Hub unreachable");
  });

  it("find where a line starts", () => {
    const text = "a\nbb\nccc";
    expect(offsetOfLine(text, 1)).toBe(0);
    expect(offsetOfLine(text, 2)).toBe(2);
    expect(offsetOfLine(text, 3)).toBe(5);
    expect(offsetOfLine(text, 9)).toBe(text.length);
  });
});

describe("PolicyStore", () => {
  it("loads, edits and saves; an invalid text keeps the policy in effect", async () => {
    let current = doc("# empty\n");
    const store = new PolicyStore({
      policy: async () => current,
      setPolicy: async (text) => {
        if (text.includes("alow")) throw new ApiError(400, "invalid_policy", "line 3, column 10: unknown variant `alow`");
        current = doc(text, 1);
        return current;
      },
    });
    await store.load();
    expect(store.draft).toBe("# empty\n");
    expect(store.dirty).toBe(false);

    store.edit('[[rule]]\nname = "x"\naction = "alow"\n');
    expect(store.dirty).toBe(true);
    expect(await store.save()).toBe(false);
    expect(store.problem).toEqual({ line: 3, column: 10, reason: "unknown variant `alow`" });
    expect(store.doc?.text).toBe("# empty\n");
    expect(store.dirty).toBe(true);

    store.edit('[[rule]]\nname = "x"\naction = "allow"\n');
    expect(await store.save()).toBe(true);
    expect(store.problem).toBeNull();
    expect(store.saved).toBe(true);
    expect(store.dirty).toBe(false);
    expect(store.doc?.rules.length).toBe(1);
  });

  it("a network failure is a problem without a line", async () => {
    const store = new PolicyStore({
      policy: async () => doc(""),
      setPolicy: async () => {
        throw new ApiError(0, "network", "fetch failed");
      },
    });
    await store.load();
    store.edit("x");
    expect(await store.save()).toBe(false);
    expect(store.problem).toEqual({ line: null, column: null, reason: "Hub unreachable" });
  });
});
