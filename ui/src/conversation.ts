// Reduces a session's stored messages into what the conversation view shows:
// consecutive agent chunks become one text block, and each tool call absorbs
// its later tool_call_update entries (matched by tool_call_id).
import type { Decision } from "./generated/Decision";
import type { Message } from "./generated/Message";
import type { ToolCallStatus } from "./generated/ToolCallStatus";
import type { Usage } from "./generated/Usage";
import { sumUsage } from "./usage";

export type ConversationItem =
  | { kind: "user"; key: string; text: string; at: string }
  | { kind: "agent"; key: string; text: string; at: string }
  | {
      kind: "tool";
      key: string;
      toolCallId: string;
      name: string;
      title: string;
      input: unknown;
      status: ToolCallStatus;
      output: string | null;
      /** True when the update arrived but its tool_call is not loaded (older page). */
      orphan: boolean;
    }
  | { kind: "permission"; key: string; tool: string; input: unknown; toolCallId: string | null }
  | { kind: "auto_decided"; key: string; tool: string; input: unknown; decision: Decision }
  | { kind: "turn_end"; key: string; stopReason: string; isError: boolean; usage: Usage | null }
  | { kind: "error"; key: string; message: string }
  | { kind: "ended"; key: string; reason: string; exitCode: number | null };

type ToolItem = Extract<ConversationItem, { kind: "tool" }>;

export function reduceConversation(messages: readonly Message[]): ConversationItem[] {
  const items: ConversationItem[] = [];
  const tools = new Map<string, ToolItem>();
  let lastUsage: Usage | null = null;

  for (const m of messages) {
    const u = m.update;
    const key = `${m.session_id}:${m.seq}`;
    const prev = items.length ? items[items.length - 1] : undefined;
    switch (u.kind) {
      case "user_message":
        items.push({ kind: "user", key, text: u.text, at: m.created_at });
        break;
      case "agent_message_chunk":
        if (prev && prev.kind === "agent") {
          items[items.length - 1] = { ...prev, text: prev.text + u.text };
        } else {
          items.push({ kind: "agent", key, text: u.text, at: m.created_at });
        }
        break;
      case "tool_call": {
        const existing = tools.get(u.tool_call_id);
        if (existing) {
          // Re-announcement: refresh the descriptive fields, keep the result.
          Object.assign(existing, { name: u.name, title: u.title, input: u.input, orphan: false });
          break;
        }
        const item: ToolItem = {
          kind: "tool",
          key,
          toolCallId: u.tool_call_id,
          name: u.name,
          title: u.title,
          input: u.input,
          status: u.status,
          output: null,
          orphan: false,
        };
        tools.set(u.tool_call_id, item);
        items.push(item);
        break;
      }
      case "tool_call_update": {
        let item = tools.get(u.tool_call_id);
        if (!item) {
          item = {
            kind: "tool",
            key,
            toolCallId: u.tool_call_id,
            name: "tool",
            title: "",
            input: null,
            status: u.status,
            output: null,
            orphan: true,
          };
          tools.set(u.tool_call_id, item);
          items.push(item);
        }
        item.status = u.status;
        if (u.output !== null) item.output = u.output;
        break;
      }
      case "permission_request":
        items.push({ kind: "permission", key, tool: u.tool, input: u.input, toolCallId: u.tool_call_id });
        break;
      case "permission_auto_decided":
        items.push({ kind: "auto_decided", key, tool: u.tool, input: u.input, decision: u.decision });
        break;
      case "usage_update":
        // One update per model the turn used.
        lastUsage = sumUsage(lastUsage, u.usage);
        break;
      case "turn_end":
        items.push({ kind: "turn_end", key, stopReason: u.stop_reason, isError: u.is_error, usage: lastUsage });
        lastUsage = null;
        break;
      case "error":
        items.push({ kind: "error", key, message: u.message });
        break;
      case "session_ended":
        items.push({ kind: "ended", key, reason: u.reason, exitCode: u.exit_code });
        break;
    }
  }
  return items;
}

/** The most telling part of a tool input: the command or the file, else JSON. */
export function describeToolInput(input: unknown): { label: string; text: string } {
  if (typeof input === "object" && input !== null) {
    const rec = input as Record<string, unknown>;
    if (typeof rec.command === "string") return { label: "Command", text: rec.command };
    if (typeof rec.file_path === "string") return { label: "File", text: rec.file_path };
    if (typeof rec.path === "string") return { label: "Path", text: rec.path };
    if (typeof rec.url === "string") return { label: "URL", text: rec.url };
    if (typeof rec.pattern === "string") return { label: "Pattern", text: rec.pattern };
  }
  return { label: "Input", text: formatJson(input) };
}

export function formatJson(value: unknown): string {
  if (value === undefined) return "";
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

export const decisionLabel: Record<Decision, string> = {
  allow_once: "Allowed once",
  allow_always: "Allowed always",
  reject_once: "Rejected",
  reject_always: "Rejected always",
};
