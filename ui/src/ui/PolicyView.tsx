import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { HubApi } from "../api";
import { offsetOfLine, POLICY_EXAMPLE, PolicyStore, problemText } from "../policy";

/** The approval policy editor (owner only): the TOML, Save, and the hub's verdict. */
export function PolicyView(props: { api: HubApi }) {
  const store = useMemo(() => new PolicyStore(props.api), [props.api]);
  const [, setTick] = useState(0);
  useEffect(() => store.subscribe(() => setTick((n) => n + 1)), [store]);
  useEffect(() => {
    void store.load();
  }, [store]);
  const editor = useRef<HTMLTextAreaElement>(null);

  const save = async () => {
    const ok = await store.save();
    const line = store.problem?.line;
    if (!ok && line && editor.current) {
      // Put the cursor on the line the hub named.
      const at = offsetOfLine(store.draft, line);
      editor.current.focus();
      editor.current.setSelectionRange(at, at);
    }
  };

  return (
    <section class="policy-view" aria-label="Approval policy" data-testid="policy-view">
      <div class="view-header">
        <a class="back" href="#/" aria-label="Back to sessions">
          ‹ Sessions
        </a>
        <h2>Approval policy</h2>
        <span class="spacer" />
        <a class="button" href="#/audit">
          Audit log
        </a>
      </div>
      <div class="policy-body">
        <p class="hint">
          Rules that allow, deny or ask for an agent's requests by agent, tool, shell command and path. Without a
          matching rule, you are asked. A matching <code>deny</code> wins over <code>ask</code>, which wins over{" "}
          <code>allow</code>. An <code>allow</code> rule never matches a compound command (<code>;</code>{" "}
          <code>&&</code> <code>|</code> <code>&gt;</code> <code>$(…)</code> …): such requests are asked.
          {store.doc && (
            <>
              {" "}
              Kept in <code>{store.doc.path}</code>.
            </>
          )}
        </p>
        {store.loadError && (
          <div class="banner error" role="alert">
            {store.loadError}{" "}
            <button type="button" class="link" onClick={() => void store.load()}>
              Retry
            </button>
          </div>
        )}
        {store.doc?.problem && (
          <div class="banner error" role="alert" data-testid="policy-file-problem">
            <code>policy.toml</code> was edited and cannot be used: {store.doc.problem}
            <br />
            No rule applies until it is fixed: every request is asked. Fix it below and save.
          </div>
        )}
        {store.doc && (
          <>
            <textarea
              ref={editor}
              class="policy-editor"
              data-testid="policy-editor"
              aria-label="policy.toml"
              spellcheck={false}
              autocapitalize="off"
              autocorrect="off"
              value={store.draft}
              placeholder={POLICY_EXAMPLE}
              onInput={(e) => store.edit((e.currentTarget as HTMLTextAreaElement).value)}
            />
            {store.problem && (
              <div class="banner error policy-error" role="alert" data-testid="policy-error">
                Not saved. {problemText(store.problem)}
                <br />
                The policy in effect has not changed.
              </div>
            )}
            {store.saved && !store.dirty && (
              <p class="policy-saved" role="status" data-testid="policy-saved">
                Saved: {store.doc.rules.length} rule{store.doc.rules.length === 1 ? "" : "s"} in effect.
              </p>
            )}
            <div class="policy-actions">
              {store.draft.trim() === "" && (
                <button type="button" onClick={() => store.edit(POLICY_EXAMPLE)}>
                  Start from an example
                </button>
              )}
              <button
                type="button"
                onClick={() => store.edit(store.doc?.text ?? "")}
                disabled={!store.dirty || store.saving}
              >
                Discard changes
              </button>
              <button
                type="button"
                class="primary"
                data-testid="policy-save"
                onClick={() => void save()}
                disabled={!store.dirty || store.saving}
              >
                {store.saving ? "Saving…" : "Save"}
              </button>
            </div>
            <h3 class="pane-title">Rules in effect</h3>
            {store.doc.rules.length === 0 ? (
              <p class="muted pad">None: every request is asked.</p>
            ) : (
              <ul class="policy-rules">
                {store.doc.rules.map((r) => (
                  <li key={r.name} class={`policy-rule action-${r.action}`}>
                    <span class={`policy-action action-${r.action}`}>{r.action}</span> <strong>{r.name}</strong>
                    <span class="muted">
                      {[
                        r.agent ? `agent ${r.agent}` : "",
                        r.tools.length ? `tools ${r.tools.join(", ")}` : "",
                        r.commands.length ? `commands ${r.commands.map((c) => `“${c}”`).join(", ")}` : "",
                        r.paths.length ? `paths ${r.paths.join(", ")}` : "",
                      ]
                        .filter(Boolean)
                        .join(" · ") || "every request"}
                    </span>
                  </li>
                ))}
              </ul>
            )}
          </>
        )}
      </div>
    </section>
  );
}
