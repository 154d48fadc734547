import { useState } from "preact/hooks";
import { ApiError } from "../api";
import type { Approval } from "../generated/Approval";
import type { Machine } from "../generated/Machine";
import { errorText, type HubStore } from "../hub";
import { machineApprovals, sortedMachines, type HubState } from "../hubState";

const machineStateLabel: Record<Machine["state"], string> = {
  online: "online",
  shutting_down: "stopping",
  offline: "offline",
};

function openSession(id: string) {
  location.hash = `#/session/${encodeURIComponent(id)}`;
}

/** Machines with their runner's state, "New session" on online ones, and the
 *  machine-scoped requests (such as creating a directory) waiting for a person. */
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
            {machineApprovals(props.state, m.id).map((a) => (
              <MachineRequest key={a.id} store={props.store} approval={a} />
            ))}
            {openFor === m.id && <NewSessionForm store={props.store} machine={m} onClose={() => setOpenFor(null)} />}
          </li>
        ))}
      </ul>
    </section>
  );
}

/** "Create /path for a new session?" with Create / Don't create. */
function MachineRequest(props: { store: HubStore; approval: Approval }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const input = props.approval.input as { cwd?: string };
  const decide = async (allow: boolean) => {
    setBusy(true);
    setError(null);
    try {
      const answer = await props.store.decide(props.approval.id, allow ? "allow_once" : "reject_once");
      if (answer.session_id) openSession(answer.session_id);
      else if (answer.error) setError(answer.error.message);
    } catch (e) {
      setError(e instanceof ApiError && e.code === "already_decided" ? "Already decided elsewhere." : errorText(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="machine-request" role="group" aria-label="Request" data-testid="machine-approval" data-approval-id={props.approval.id}>
      <p>
        <strong>{input.cwd ?? "The directory"}</strong> does not exist. Create it and start the session there?
      </p>
      {error && (
        <p class="banner error" role="alert">
          {error}
        </p>
      )}
      <div class="new-session-actions">
        <button type="button" class="danger" disabled={busy} onClick={() => void decide(false)} data-testid="machine-approval-reject">
          Don't create
        </button>
        <button type="button" class="primary" disabled={busy} onClick={() => void decide(true)} data-testid="machine-approval-allow">
          Create and start
        </button>
      </div>
    </div>
  );
}

function NewSessionForm(props: { store: HubStore; machine: Machine; onClose: () => void }) {
  const [cwd, setCwd] = useState("");
  const [prompt, setPrompt] = useState("");
  const [branch, setBranch] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function submit(e: Event) {
    e.preventDefault();
    if (!cwd.trim() || busy) return;
    setBusy(true);
    setError(null);
    try {
      const answer = await props.store.api.spawnSession(props.machine.id, {
        agent: "claude",
        cwd: cwd.trim(),
        prompt: prompt.trim() ? prompt : null,
        create_directory: false,
        worktree_branch: branch.trim() ? branch.trim() : null,
      });
      props.onClose();
      // A missing directory comes back as a request to approve, shown above.
      if ("session_id" in answer) openSession(answer.session_id);
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
        <textarea
          rows={2}
          value={prompt}
          data-testid="new-session-prompt"
          onInput={(e) => setPrompt((e.target as HTMLTextAreaElement).value)}
        />
      </label>
      <label>
        New git worktree on branch (optional)
        <input
          type="text"
          value={branch}
          placeholder="feature/my-change"
          data-testid="new-session-branch"
          onInput={(e) => setBranch((e.target as HTMLInputElement).value)}
        />
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
