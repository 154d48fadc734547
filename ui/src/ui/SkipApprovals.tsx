import { useState } from "preact/hooks";
import type { HubApi } from "../api";
import { errorText } from "../hub";

/** Shown wherever the session is: its requests are allowed without asking. */
export function SkipApprovalsBadge(props: { compact?: boolean }) {
  return (
    <span
      class="skip-badge"
      data-testid="skip-approvals-badge"
      title="Skip approvals is on: this session's requests are allowed without asking (policy deny rules still apply)"
    >
      {props.compact ? "skips approvals" : "Approvals skipped"}
    </span>
  );
}

/** The state of the owner's "skip approvals" switch of one session. */
export interface SkipControl {
  confirming: boolean;
  busy: boolean;
  error: string | null;
  /** Off → asks for confirmation; on → turns it off at once. */
  toggle(enabled: boolean): void;
  confirm(): void;
  cancel(): void;
}

export function useSkipApprovals(api: HubApi, sessionId: string): SkipControl {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const set = async (enabled: boolean) => {
    setBusy(true);
    setError(null);
    try {
      // The new state arrives as a session event.
      await api.setSkipApprovals(sessionId, enabled);
      setConfirming(false);
    } catch (e) {
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return {
    confirming,
    busy,
    error,
    toggle: (enabled) => (enabled ? void set(false) : setConfirming(true)),
    confirm: () => void set(true),
    cancel: () => setConfirming(false),
  };
}

export function SkipApprovalsToggle(props: { control: SkipControl; enabled: boolean }) {
  const { control, enabled } = props;
  return (
    <button
      type="button"
      class={`toggle skip-toggle ${enabled ? "on" : ""}`}
      aria-pressed={enabled}
      data-testid="skip-approvals-toggle"
      disabled={control.busy}
      title={enabled ? "Turn off: ask again for this session's requests" : "Allow this session's requests without asking"}
      onClick={() => control.toggle(enabled)}
    >
      <span class="skip-label">{enabled ? "Skipping approvals" : "Skip approvals"}</span>
      <span class="skip-short" aria-hidden="true">
        {enabled ? "Skip: on" : "Skip"}
      </span>
    </button>
  );
}

/** The confirmation before turning it on, and any error; under the session header. */
export function SkipApprovalsPrompt(props: { control: SkipControl; enabled: boolean }) {
  const { control, enabled } = props;
  return (
    <>
      {control.confirming && !enabled && (
        <div class="banner warn skip-confirm" role="alertdialog" aria-label="Skip approvals?" data-testid="skip-approvals-confirm">
          <p>
            Allow <strong>every</strong> request of this session without asking: commands, file edits, network access?
            Each one is still recorded in the audit log, and the policy's deny rules still deny.
          </p>
          <div class="skip-confirm-actions">
            <button type="button" onClick={control.cancel} disabled={control.busy}>
              Cancel
            </button>
            <button type="button" class="danger" onClick={control.confirm} disabled={control.busy} data-testid="skip-approvals-confirm-on">
              Turn on
            </button>
          </div>
        </div>
      )}
      {control.error && (
        <div class="banner error" role="alert">
          Could not change skip approvals: {control.error}
        </div>
      )}
    </>
  );
}

/** The persistent notice in a session that skips approvals. */
export function SkipApprovalsBanner() {
  return (
    <div class="banner skip-banner" role="status" data-testid="skip-approvals-banner">
      <SkipApprovalsBadge /> Every request of this session is allowed without asking (recorded in the audit log;
      policy deny rules still apply).
    </div>
  );
}
