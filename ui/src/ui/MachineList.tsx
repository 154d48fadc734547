import { useState } from "preact/hooks";
import { ApiError } from "../api";
import type { Machine } from "../generated/Machine";
import type { HubStore } from "../hub";
import { sortedMachines, type HubState } from "../hubState";

const machineStateLabel: Record<Machine["state"], string> = {
  online: "online",
  shutting_down: "stopping",
  offline: "offline",
};

/** Machines with their runner's state, and "New session" on online ones. */
export function MachineList(props: { store: HubStore; state: HubState }) {
  const machines = sortedMachines(props.state);
  const [openFor, setOpenFor] = useState<string | null>(null);
  if (machines.length === 0) return null;
  return (
    <section class="machine-list" aria-label="Machines">
      <h2 class="pane-title">Machines</h2>
      <ul role="list">
        {machines.map((m) => (
          <li key={m.id} class="machine-item" data-testid="machine-item" data-machine-id={m.id} data-state={m.state}>
            <div class="machine-row">
              <span class="machine-name">{m.name}</span>
              <span class={`state-badge machine-${m.state}`}>{machineStateLabel[m.state]}</span>
              {m.state === "online" && openFor !== m.id && (
                <button type="button" class="link" data-testid="new-session" onClick={() => setOpenFor(m.id)}>
                  New session
                </button>
              )}
            </div>
            {openFor === m.id && (
              <NewSessionForm store={props.store} machine={m} onClose={() => setOpenFor(null)} />
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function NewSessionForm(props: { store: HubStore; machine: Machine; onClose: () => void }) {
  const [cwd, setCwd] = useState("");
  const [prompt, setPrompt] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e: Event) {
    e.preventDefault();
    if (!cwd.trim() || busy) return;
    setBusy(true);
    setError(null);
    try {
      const id = await props.store.api.spawnSession(props.machine.id, {
        agent: "claude",
        cwd: cwd.trim(),
        prompt: prompt.trim() ? prompt : null,
      });
      props.onClose();
      location.hash = `#/session/${encodeURIComponent(id)}`;
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="new-session" onSubmit={(e) => void submit(e)} data-testid="new-session-form">
      <label>
        Directory on {props.machine.name}
        <input
          type="text"
          value={cwd}
          required
          placeholder="/home/you/project"
          data-testid="new-session-cwd"
          onInput={(e) => setCwd((e.target as HTMLInputElement).value)}
        />
      </label>
      <label>
        First prompt (optional)
        <textarea rows={2} value={prompt} data-testid="new-session-prompt" onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)} />
      </label>
      {error && (
        <p class="banner error" role="alert" data-testid="new-session-error">
          {error}
        </p>
      )}
      <div class="new-session-actions">
        <button type="button" class="ghost" onClick={props.onClose}>
          Cancel
        </button>
        <button type="submit" class="primary" disabled={busy || !cwd.trim()} data-testid="new-session-start">
          {busy ? "Starting…" : "Start Claude Code"}
        </button>
      </div>
    </form>
  );
}
