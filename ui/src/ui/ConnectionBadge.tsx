import type { ConnectionStatus } from "../events";

const labels: Record<ConnectionStatus, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  offline: "offline",
};

export function ConnectionBadge(props: { status: ConnectionStatus }) {
  return (
    <span
      class={`conn conn-${props.status}`}
      data-testid="connection-status"
      data-status={props.status}
      role="status"
      aria-live="polite"
    >
      <span class="conn-dot" aria-hidden="true" />
      {labels[props.status]}
    </span>
  );
}
