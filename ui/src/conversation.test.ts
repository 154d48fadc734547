import { describe, expect, it } from "vitest";
import { describeToolInput, reduceConversation } from "./conversation";
import { msg } from "./testFixtures";

describe("reduceConversation", () => {
  it("merges consecutive agent chunks into one text", () => {
    const items = reduceConversation([
      msg(1, { kind: "user_message", text: "hi" }),
      msg(2, { kind: "agent_message_chunk", text: "Hel" }),
      msg(3, { kind: "agent_message_chunk", text: "lo" }),
      msg(4, { kind: "turn_end", stop_reason: "end_turn", is_error: false }),
      msg(5, { kind: "agent_message_chunk", text: "again" }),
    ]);
    expect(items.map((i) => i.kind)).toEqual(["user", "agent", "turn_end", "agent"]);
    expect(items[1]).toMatchObject({ kind: "agent", text: "Hello", key: "s1:2" });
  });

  it("attaches tool_call_update status and output to the tool call", () => {
    const items = reduceConversation([
      msg(1, { kind: "tool_call", tool_call_id: "t1", name: "Bash", title: "echo hi", input: { command: "echo hi" }, status: "pending" }),
      msg(2, { kind: "agent_message_chunk", text: "running" }),
      msg(3, { kind: "tool_call_update", tool_call_id: "t1", status: "in_progress", output: null }),
      msg(4, { kind: "tool_call_update", tool_call_id: "t1", status: "completed", output: "hi\n" }),
    ]);
    expect(items).toHaveLength(2);
    expect(items[0]).toMatchObject({ kind: "tool", toolCallId: "t1", status: "completed", output: "hi\n", orphan: false });
  });

  it("keeps an update whose tool call is not loaded as an orphan item", () => {
    const items = reduceConversation([msg(9, { kind: "tool_call_update", tool_call_id: "old", status: "failed", output: "boom" })]);
    expect(items[0]).toMatchObject({ kind: "tool", orphan: true, status: "failed", output: "boom" });
  });

  it("an agent chunk after a tool call starts a new text block", () => {
    const items = reduceConversation([
      msg(1, { kind: "agent_message_chunk", text: "a" }),
      msg(2, { kind: "tool_call", tool_call_id: "t", name: "Read", title: "", input: {}, status: "pending" }),
      msg(3, { kind: "agent_message_chunk", text: "b" }),
    ]);
    expect(items.map((i) => i.kind)).toEqual(["agent", "tool", "agent"]);
  });

  it("carries usage into the following turn end and keeps errors and endings", () => {
    const items = reduceConversation([
      msg(1, {
        kind: "usage_update",
        usage: { model: "m", input_tokens: 10, output_tokens: 5, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: null },
      }),
      msg(2, { kind: "turn_end", stop_reason: "end_turn", is_error: false }),
      msg(3, { kind: "error", message: "rate limited" }),
      msg(4, { kind: "permission_auto_decided", tool: "Read", input: { file_path: "/a" }, decision: "allow_once" }),
      msg(5, { kind: "session_ended", reason: "exited", exit_code: 0 }),
    ]);
    expect(items.map((i) => i.kind)).toEqual(["turn_end", "error", "auto_decided", "ended"]);
    expect(items[0]).toMatchObject({ usage: { input_tokens: 10 } });
  });
});

describe("describeToolInput", () => {
  it("prefers command, then file path, else JSON", () => {
    expect(describeToolInput({ command: "ls", description: "x" })).toEqual({ label: "Command", text: "ls" });
    expect(describeToolInput({ file_path: "/a/b" })).toEqual({ label: "File", text: "/a/b" });
    expect(describeToolInput({ x: 1 })).toEqual({ label: "Input", text: '{\n  "x": 1\n}' });
  });
});
