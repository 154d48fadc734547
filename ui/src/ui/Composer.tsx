import { useState } from "preact/hooks";
import { ApiError } from "../api";
import type { Session } from "../generated/Session";
import { errorText, type HubStore } from "../hub";

export function Composer(props: { store: HubStore; sessionId: string; session: Session | undefined }) {
  const [text, setText] = useState("");
  const [sending, setSending] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [endedByServer, setEndedByServer] = useState(false);
  const ended = props.session?.state === "ended" || endedByServer;
  const paused = props.session?.usage.budget_paused ?? false;

  const send = async () => {
    const value = text.trim();
    if (!value || sending || ended || paused) return;
    setSending(true);
    setError(null);
    try {
      await props.store.api.sendMessage(props.sessionId, value);
      setText("");
    } catch (e) {
      if (e instanceof ApiError && e.code === "session_ended") setEndedByServer(true);
      else setError(errorText(e));
    } finally {
      setSending(false);
    }
  };

  if (ended) {
    return (
      <div class="composer composer-ended" role="note">
        <textarea data-testid="composer-input" disabled aria-label="Message" placeholder="Session ended" rows={1} />
        <p class="muted">This session has ended, so it cannot take new messages. Start a new one with <code>hapi claude</code>.</p>
      </div>
    );
  }

  if (paused) {
    return (
      <div class="composer composer-ended" role="note" data-testid="composer-paused">
        <textarea data-testid="composer-input" disabled aria-label="Message" placeholder="Paused: budget reached" rows={1} />
        <p class="muted">The session's budget is reached. Raise or clear the budget above to send more prompts.</p>
      </div>
    );
  }

  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      {error && (
        <p class="composer-error" role="alert">
          {error}
        </p>
      )}
      <div class="composer-row">
        <textarea
          data-testid="composer-input"
          aria-label="Message"
          placeholder={props.session?.state === "disconnected" ? "Agent disconnected; message is queued" : "Message the agent…"}
          rows={2}
          value={text}
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              void send();
            }
          }}
        />
        <button type="submit" class="primary" data-testid="composer-send" disabled={sending || !text.trim()}>
          {sending ? "Sending…" : "Send"}
        </button>
      </div>
    </form>
  );
}
