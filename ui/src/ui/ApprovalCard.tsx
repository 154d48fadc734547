import { useState } from "preact/hooks";
import { ApiError } from "../api";
import { decisionLabel, describeToolInput, formatJson } from "../conversation";
import type { Approval } from "../generated/Approval";
import type { Decision } from "../generated/Decision";
import { errorText, type HubStore } from "../hub";

const buttons: { decision: Decision; label: string; testid: string; cls: string }[] = [
  { decision: "allow_once", label: "Allow once", testid: "approval-allow-once", cls: "primary" },
  { decision: "allow_always", label: "Allow always", testid: "approval-allow-always", cls: "" },
  { decision: "reject_once", label: "Reject", testid: "approval-reject", cls: "danger" },
];

export function ApprovalCard(props: { approval: Approval; store: HubStore }) {
  const { approval, store } = props;
  const [busy, setBusy] = useState<Decision | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const { label, text } = describeToolInput(approval.input);
  const offered = new Set(approval.options.map((o) => o.kind));
  const pending = approval.state === "pending";

  const decide = async (decision: Decision) => {
    setBusy(decision);
    setNote(null);
    try {
      await store.decide(approval.id, decision);
    } catch (e) {
      if (e instanceof ApiError && e.code === "already_decided") {
        setNote("Already decided elsewhere.");
        void store.decidedElsewhere(approval.id);
      } else {
        setNote(`Could not send the decision: ${errorText(e)}`);
      }
    } finally {
      setBusy(null);
    }
  };

  return (
    <article
      class={`approval-card ${pending ? "" : "decided"}`}
      data-testid="approval-card"
      data-approval-id={approval.id}
      data-state={approval.state}
      aria-label={`Approval request for ${approval.tool}`}
    >
      <header class="approval-head">
        <span class="approval-kicker">{pending ? "Permission needed" : "Permission"}</span>
        <strong class="tool-name">{approval.tool}</strong>
      </header>
      <div class="approval-input">
        <span class="field-label">{label}</span>
        <pre class="code">{text}</pre>
      </div>
      {label !== "Input" && (
        <details class="json">
          <summary>Full input</summary>
          <pre class="code">{formatJson(approval.input)}</pre>
        </details>
      )}
      {pending ? (
        <div class="approval-actions">
          {buttons
            .filter((b) => offered.size === 0 || offered.has(b.decision))
            .map((b) => (
              <button
                key={b.decision}
                type="button"
                class={b.cls}
                data-testid={b.testid}
                disabled={busy !== null}
                onClick={() => void decide(b.decision)}
              >
                {busy === b.decision ? "Sending…" : b.label}
              </button>
            ))}
        </div>
      ) : (
        <p class="approval-outcome" role="status" data-testid="approval-outcome">
          {approval.state === "cancelled"
            ? "Cancelled"
            : approval.decision
              ? `${decisionLabel[approval.decision]}${approval.decided_by ? ` by ${approval.decided_by}` : ""}`
              : "Already decided elsewhere"}
        </p>
      )}
      {note && pending && (
        <p class="approval-note" role="alert">
          {note}
        </p>
      )}
    </article>
  );
}
