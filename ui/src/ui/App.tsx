import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { adoptTokenFromLocation, clearToken, loadToken, storeToken } from "../auth";
import { HubStore, useHubState } from "../hub";
import { pendingApprovals } from "../hubState";
import { SignIn } from "./SignIn";
import { MachineList } from "./MachineList";
import { SessionList } from "./SessionList";
import { SessionView } from "./SessionView";
import { ConnectionBadge } from "./ConnectionBadge";

/** Route lives in the fragment: `#/session/<id>`, anything else is the list. */
function routeFromHash(hash: string): string | null {
  const m = /^#\/session\/([^/?#]+)/.exec(hash);
  return m ? decodeURIComponent(m[1]) : null;
}

export function navigateTo(sessionId: string | null): void {
  const target = sessionId ? `#/session/${encodeURIComponent(sessionId)}` : "#/";
  if (window.location.hash !== target) window.location.hash = target;
}

export function App() {
  const [token, setToken] = useState<string | null>(() => loadToken());
  const [notice, setNotice] = useState<string | null>(null);

  const signOut = useCallback((message: string | null) => {
    clearToken();
    setNotice(message);
    setToken(null);
  }, []);

  // A `#token=` pasted into an already open tab arrives as a hash change.
  useEffect(() => {
    const onHash = () => {
      const t = adoptTokenFromLocation();
      if (t) {
        setNotice(null);
        setToken(t);
      }
    };
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  if (!token) {
    return (
      <SignIn
        notice={notice}
        onSubmit={(t) => {
          storeToken(t);
          setNotice(null);
          setToken(t);
        }}
      />
    );
  }
  return <SignedIn key={token} token={token} onUnauthorized={() => signOut("The hub rejected the token. Sign in again.")} onSignOut={() => signOut(null)} />;
}

function SignedIn(props: { token: string; onUnauthorized: () => void; onSignOut: () => void }) {
  const store = useMemo(() => new HubStore(props.token, props.onUnauthorized), [props.token]);
  useEffect(() => {
    store.start();
    return () => store.stop();
  }, [store]);
  const state = useHubState(store);
  const [route, setRoute] = useState(() => routeFromHash(window.location.hash));
  useEffect(() => {
    const onHash = () => setRoute(routeFromHash(window.location.hash));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  const pending = pendingApprovals(state);
  // Machine-scoped requests (no session yet) are answered in the machine list.
  const waitingSessions = [...new Set(pending.flatMap((a) => (a.session_id === null ? [] : [a.session_id])))];

  const jumpToWaiting = () => {
    if (waitingSessions.length === 0) return;
    const idx = route ? waitingSessions.indexOf(route) : -1;
    navigateTo(waitingSessions[(idx + 1) % waitingSessions.length]);
  };

  return (
    <div class={`app ${route ? "has-detail" : "no-detail"}`}>
      <header class="topbar">
        <a class="brand" href="#/" aria-label="HAPI, all sessions">
          HAPI
        </a>
        <ConnectionBadge status={state.connection} />
        <span class="spacer" />
        <button
          type="button"
          class={`approvals-pill ${pending.length ? "has-pending" : ""}`}
          onClick={jumpToWaiting}
          disabled={pending.length === 0}
          data-testid="pending-approvals"
          aria-label={
            pending.length
              ? `${pending.length} pending approval${pending.length === 1 ? "" : "s"}; jump to the next session that waits`
              : "No pending approvals"
          }
          title={pending.length ? "Jump to the next session waiting for you" : "Nothing waits for you"}
        >
          {pending.length ? `${pending.length} waiting` : "0 waiting"}
        </button>
        <button type="button" class="ghost" onClick={props.onSignOut}>
          Sign out
        </button>
      </header>
      <div class="panes">
        <aside class="list-pane" aria-label="Sessions">
          <SessionList state={state} selectedId={route} onRetry={() => void store.loadSnapshot()} />
          <MachineList store={store} state={state} />
        </aside>
        <main class="detail-pane">
          {route ? (
            <SessionView key={route} store={store} state={state} sessionId={route} />
          ) : (
            <div class="empty-detail">
              <p>Select a session to watch it and answer its requests.</p>
            </div>
          )}
        </main>
      </div>
    </div>
  );
}
