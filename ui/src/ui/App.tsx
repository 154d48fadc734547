import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { adoptTokenFromLocation, clearToken, initialToken, storeToken } from "../auth";
import { desktopBridge, desktopToken, DesktopSettingsStore, isDesktopApp } from "../desktop";
import { HubStore, useHubState } from "../hub";
import { pendingApprovals } from "../hubState";
import { navigateTo, routeFromHash, watchRoute } from "../routing";
import { SignIn } from "./SignIn";
import { MachineList } from "./MachineList";
import { SessionList } from "./SessionList";
import { SessionView } from "./SessionView";
import { ConnectionBadge } from "./ConnectionBadge";
import { CredentialNoticeBanner, useHubInfo } from "./CredentialNotice";
import { DesktopSettingsPanel, SettingsButton } from "./DesktopSettings";

export function App() {
  // Inside the desktop app its injected token is the only one: no sign-in
  // screen, no sign-out, nothing persisted.
  const [desktop] = useState(() => desktopToken() !== null);
  const [token, setToken] = useState<string | null>(() => initialToken());
  const [notice, setNotice] = useState<string | null>(null);
  const [desktopRejected, setDesktopRejected] = useState(false);

  const signOut = useCallback((message: string | null) => {
    if (desktop) {
      setDesktopRejected(true);
      return;
    }
    clearToken();
    setNotice(message);
    setToken(null);
  }, [desktop]);

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

  if (desktop && token) {
    if (desktopRejected) return <DesktopTokenRejected />;
    return <SignedIn key={token} token={token} desktop onUnauthorized={() => signOut(null)} onSignOut={() => {}} />;
  }
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

/** The hub refused the token the desktop app injected (it changed?): no sign-in form here. */
function DesktopTokenRejected() {
  return (
    <div class="signin">
      <div class="signin-card" data-testid="desktop-token-rejected">
        <h1>HAPI</h1>
        <p class="notice" role="alert">
          The hub did not accept the desktop app's token.
        </p>
        <p class="hint">Reload the window; if this keeps happening, restart HAPI Desktop.</p>
        <button type="button" class="primary" onClick={() => window.location.reload()}>
          Reload
        </button>
      </div>
    </div>
  );
}

function SignedIn(props: { token: string; desktop?: boolean; onUnauthorized: () => void; onSignOut: () => void }) {
  const store = useMemo(() => new HubStore(props.token, props.onUnauthorized), [props.token]);
  useEffect(() => {
    store.start();
    return () => store.stop();
  }, [store]);
  const state = useHubState(store);
  // A hash change (a click, or the desktop app opening a session) switches the
  // view from whatever it showed before.
  const [route, setRoute] = useState(() => routeFromHash(window.location.hash));
  useEffect(() => watchRoute(window, setRoute), []);
  const hubInfo = useHubInfo(store.api, state.connection === "live");
  // Desktop-app settings (its Tauri commands); null in a plain browser.
  const desktopSettings = useMemo(() => (isDesktopApp() ? new DesktopSettingsStore(desktopBridge()) : null), []);
  useEffect(() => {
    void desktopSettings?.load();
  }, [desktopSettings]);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const closeSettings = useCallback(() => setSettingsOpen(false), []);

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
        {desktopSettings && <SettingsButton open={settingsOpen} onToggle={() => setSettingsOpen((o) => !o)} />}
        {!props.desktop && (
          <button type="button" class="ghost" onClick={props.onSignOut}>
            Sign out
          </button>
        )}
      </header>
      {desktopSettings && settingsOpen && (
        <div class="settings-anchor">
          <DesktopSettingsPanel store={desktopSettings} onClose={closeSettings} />
        </div>
      )}
      <CredentialNoticeBanner info={hubInfo} />
      <div class="panes">
        <aside class="list-pane" aria-label="Sessions">
          <SessionList state={state} selectedId={route} onRetry={() => void store.loadSnapshot()} />
          <MachineList store={store} state={state} />
        </aside>
        <main class="detail-pane">
          {route ? (
            <SessionView key={route} store={store} state={state} sessionId={route} desktop={desktopSettings} />
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
