// In-page toasts for approvals that turn up while the page is open.
import type { ToastView } from "../toasts";

export function ApprovalToasts(props: { toasts: ToastView[]; onDismiss: (id: string) => void }) {
  if (props.toasts.length === 0) return null;
  return (
    <div class="toasts" aria-live="assertive" aria-label="New approval requests">
      {props.toasts.map((t) => (
        <div key={t.id} class="toast" role="alert" data-testid="approval-toast" data-approval-id={t.id}>
          <div class="toast-body">
            <p class="toast-title">
              <span class="toast-kicker">Permission needed</span> <strong>{t.title}</strong>
            </p>
            <p class="toast-tool">
              <span class="tool-name">{t.tool}</span>
              {t.detail && <code class="toast-detail">{t.detail}</code>}
            </p>
          </div>
          <div class="toast-actions">
            <a
              class="button primary"
              href={t.href}
              data-testid="approval-toast-open"
              onClick={() => props.onDismiss(t.id)}
            >
              Open
            </a>
            <button type="button" class="ghost" data-testid="approval-toast-dismiss" onClick={() => props.onDismiss(t.id)}>
              Dismiss
            </button>
          </div>
        </div>
      ))}
    </div>
  );
}
