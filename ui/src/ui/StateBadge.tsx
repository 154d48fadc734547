import type { SessionState } from "../generated/SessionState";
import { stateLabel } from "../sessionFormat";

export function StateBadge(props: { state: SessionState }) {
  return (
    <span class={`state-badge state-${props.state}`} data-testid="session-state">
      {stateLabel[props.state]}
    </span>
  );
}
