import { decisionLabel, describeToolInput, formatJson, type ConversationItem } from "../conversation";
import { formatCost, formatTokens, usageTokens } from "../usage";

const statusLabel = {
  pending: "pending",
  in_progress: "running",
  completed: "completed",
  failed: "failed",
} as const;

type ToolItem = Extract<ConversationItem, { kind: "tool" }>;

function ToolCall(props: { item: ToolItem }) {
  const { item } = props;
  const { label, text } = describeToolInput(item.input);
  const title = item.title || (item.input !== null ? text : "");
  return (
    <div class={`msg tool tool-${item.status}`} data-testid="tool-call" data-tool-call-id={item.toolCallId} data-tool-name={item.name} data-status={item.status}>
      <div class="tool-head">
        <span class="tool-name">{item.name}</span>
        <span class={`tool-status status-${item.status}`}>{statusLabel[item.status]}</span>
      </div>
      {title && <pre class="tool-title">{title}</pre>}
      {item.input !== null && (
        <details class="json">
          <summary>{label === "Input" ? "Input" : "Input (JSON)"}</summary>
          <pre class="code">{formatJson(item.input)}</pre>
        </details>
      )}
      {(item.status === "completed" || item.status === "failed" || item.output !== null) && (
        <div class={`tool-result result-${item.status}`} data-testid="tool-result" data-status={item.status}>
          <span class="field-label">{item.status === "failed" ? "Failed" : "Result"}</span>
          {item.output ? <pre class="code output">{item.output}</pre> : <span class="muted"> (no output)</span>}
        </div>
      )}
    </div>
  );
}

function Item(props: { item: ConversationItem }) {
  const { item } = props;
  switch (item.kind) {
    case "user":
      return (
        <div class="msg user" data-testid="user-text">
          <div class="text">{item.text}</div>
        </div>
      );
    case "agent":
      return (
        <div class="msg agent" data-testid="agent-text">
          <div class="text">{item.text}</div>
        </div>
      );
    case "tool":
      return <ToolCall item={item} />;
    case "permission":
      return (
        <div class="note" data-testid="permission-request">
          Asked permission to use <strong>{item.tool}</strong>
        </div>
      );
    case "auto_decided": {
      const { text } = describeToolInput(item.input);
      return (
        <div class="note" data-testid="permission-auto">
          {decisionLabel[item.decision]} by rule: <strong>{item.tool}</strong> <code class="inline">{truncate(text, 120)}</code>
        </div>
      );
    }
    case "turn_end":
      return (
        <div class={`turn-end ${item.isError ? "is-error" : ""}`} data-testid="turn-end">
          <span>
            Turn ended{item.stopReason && item.stopReason !== "end_turn" ? ` (${item.stopReason})` : ""}
            {item.usage
              ? ` · ${formatTokens(usageTokens(item.usage))} tokens${
                  item.usage.cost_usd !== null ? ` · ${formatCost(item.usage.cost_usd)}` : ""
                }`
              : ""}
          </span>
        </div>
      );
    case "error":
      return (
        <div class="msg error" role="alert" data-testid="agent-error">
          <strong>Error</strong>
          <div class="text">{item.message}</div>
        </div>
      );
    case "ended":
      return (
        <div class="session-ended" data-testid="session-ended">
          Session ended{item.reason ? `: ${item.reason}` : ""}
          {item.exitCode !== null ? ` (exit code ${item.exitCode})` : ""}
        </div>
      );
  }
}

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

export function Conversation(props: { items: ConversationItem[] }) {
  return (
    <div class="conversation" role="log" aria-label="Conversation" aria-live="polite">
      {props.items.map((it) => (
        <Item key={it.key} item={it} />
      ))}
    </div>
  );
}
