import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import {
  adoptTokenFromLocation,
  forgetRejectedCredential,
  initialCredential,
  isOwner,
  storeDeviceToken,
  storeToken,
  type Credential,
} from "../auth";
import { desktopBridge, desktopToken, DesktopSettingsStore, isDesktopApp } from "../desktop";
import { HubStore, useHubState } from "../hub";
import { pendingApprovals } from "../hubState";
import { urlAfterPairing } from "../pairing";
import { RemoteAccessStore } from "../remote";
import { navigateTo, parseRoute, watchParsedRoute, type Route } from "../routing";
import { dismissToast, initialToasts, nextToasts, toastView } from "../toasts";
import { SignIn } from "./SignIn";
import { MachineList } from "./MachineList";
import { SessionList } from "./SessionList";
import { SessionView } from "./SessionView";
import { ConnectionBadge } from "./ConnectionBadge";
import { CredentialNoticeBanner, useHubInfo } from "./CredentialNotice";
import { DesktopSettingsPanel, SettingsButton } from "./DesktopSettings";
import { ApprovalToasts } from "./ApprovalToasts";
import { DeviceUnpaired, PairPage } from "./PairPage";
import { PairPhoneDialog } from "./PairPhoneDialog";
import { PhoneButton, PhonePanel } from "./PhonePanel";
import { AuditView } from "./AuditView";
import { PolicyView } from "./PolicyView";

export function App() {
  // Inside the desktop app its injected token is the only one: no sign-in
  // screen, no sign-out, nothing persisted.
  const [desktop] = useState(() => desktopToken() !== null);
  const [credential, setCredential] = useState<Credential | null>(() => initialCredential());
  const [notice, setNotice] = useState<string | null>(null);
  const [desktopRejected, setDesktopRejected] = useState(false);
  // A paired phone whose device token the hub stopped taking (revoked).
  const [unpaired, setUnpaired] = useState(false);
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.hash));
  useEffect(() => watchParsedRoute(window, setRoute), []);

  /** The hub answered 401 (`rejected`), or the person signed out. */
  const signOut = useCallback((kind: Credential["kind"], rejected: boolean) => {
    if (desktop || kind === "desktop") {
      if (rejected) setDesktopRejected(true);
      return;
    }
    const next = forgetRejectedCredential(kind);
    setUnpaired(rejected && next === "device-unpaired");
    setNotice(rejected && next === "sign-in" ? "The hub rejected the token. Sign in again." : null);
    setCredential(null);
  }, [desktop]);

  // A `#token=` pasted into an already open tab arrives as a hash change.
  useEffect(() => {
    const onHash = () => {
      const t = adoptTokenFromLocation();
      if (t) {
        setNotice(null);
        setUnpaired(false);
        setCredential({ kind: "owner", token: t });
      }
    };
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  if (desktop && credential) {
    if (desktopRejected) return <DesktopTokenRejected />;
    return (
      <SignedIn
        key={credential.token}
        credential={credential}
        route={route}
        onUnauthorized={() => signOut("desktop", true)}
        onSignOut={() => {}}
      />
    );
  }
  // A phone pairing (QR link or typed code), whatever it held before.
  if (route.kind === "pair") {
    return (
      <PairPage
        secret={route.secret}
        onPaired={(paired) => {
          storeDeviceToken(paired.token);
          window.history.replaceState(null, "", urlAfterPairing(window.location));
          setRoute({ kind: "list" });
          setNotice(null);
          setUnpaired(false);
          setCredential({ kind: "device", token: paired.token });
        }}
      />
    );
  }
  if (!credential) {
    if (unpaired) return <DeviceUnpaired onSignIn={() => setUnpaired(false)} />;
    return (
      <SignIn
        notice={notice}
        onSubmit={(t) => {
          storeToken(t);
          setNotice(null);
          setCredential({ kind: "owner", token: t });
        }}
      />
    );
  }
  const kind = credential.kind;
  return (
    <SignedIn
      key={credential.token}
      credential={credential}
      route={route}
      onUnauthorized={() => signOut(kind, true)}
      onSignOut={() => signOut(kind, false)}
    />
  );
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

function SignedIn(props: { credential: Credential; route: Route; onUnauthorized: () => void; onSignOut: () => void }) {
  const { credential, route } = props;
  const desktop = credential.kind === "desktop";
  const owner = isOwner(credential);
  const store = useMemo(() => new HubStore(credential.token, props.onUnauthorized), [credential.token]);
  useEffect(() => {
    store.start();
    return () => store.stop();
  }, [store]);
  const state = useHubState(store);
  // A hash change (a click, or the desktop app opening a session) switches the
  // view from whatever it showed before.
  const sessionId = route.kind === "session" ? route.id : null;
  // The owner's audit log and policy editor take the detail pane.
  const ownerView = owner && (route.kind === "audit" || route.kind === "policy") ? route : null;
  const hubInfo = useHubInfo(store.api, state.connection === "live", owner);
  // Desktop-app settings (its Tauri commands); null in a plain browser.
  const desktopSettings = useMemo(() => (isDesktopApp() ? new DesktopSettingsStore(desktopBridge()) : null), []);
  useEffect(() => {
    void desktopSettings?.load();
  }, [desktopSettings]);
  // Phone access (owner only): state for the header button, the panel and the pairing dialog.
  const remote = useMemo(() => (owner ? new RemoteAccessStore(store.api) : null), [store, owner]);
  useEffect(() => {
    void remote?.load();
  }, [remote]);
  const [panel, setPanel] = useState<"settings" | "phone" | null>(null);
  const closePanel = useCallback(() => setPanel(null), []);
  const closePairDialog = useCallback(() => navigateTo(null), []);

  const pending = pendingApprovals(state);
  // Machine-scoped requests (no session yet) are answered in the machine list.
  const waitingSessions = [...new Set(pending.flatMap((a) => (a.session_id === null ? [] : [a.session_id])))];

  // In-page toasts for approvals that arrive while the page is open.
  const [toasts, setToasts] = useState(initialToasts);
  useEffect(() => {
    setToasts((prev) => nextToasts(prev, pendingApprovals(state), { ready: state.sessionsLoaded, openSessionId: sessionId }));
  }, [state.approvals, state.sessionsLoaded, sessionId]);
  const toastViews = toasts.visible.flatMap((id) => {
    const a = state.approvals[id];
    return a ? [toastView(a, a.session_id === null ? undefined : state.sessions[a.session_id])] : [];
  });

  const jumpToWaiting = () => {
    if (waitingSessions.length === 0) return;
    const idx = sessionId ? waitingSessions.indexOf(sessionId) : -1;
    navigateTo(waitingSessions[(idx + 1) % waitingSessions.length]);
  };

  return (
    <div class={`app ${sessionId || ownerView ? "has-detail" : "no-detail"} ${owner ? "as-owner" : "as-device"}`}>
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
        {owner && (
          <nav class="owner-nav" aria-label="Audit and policy">
            <a class={`header-link ${route.kind === "audit" ? "active" : ""}`} href="#/audit" data-testid="audit-link">
              Audit
            </a>
            <a class={`header-link ${route.kind === "policy" ? "active" : ""}`} href="#/policy" data-testid="policy-link">
              Policy
            </a>
          </nav>
        )}
        {remote && <PhoneButton store={remote} open={panel === "phone"} onToggle={() => setPanel((p) => (p === "phone" ? null : "phone"))} />}
        {desktopSettings && (
          <SettingsButton open={panel === "settings"} onToggle={() => setPanel((p) => (p === "settings" ? null : "settings"))} />
        )}
        {!desktop && (
          <button type="button" class="ghost" onClick={props.onSignOut} title={owner ? "Sign out" : "Forget this phone's pairing"}>
            Sign out
          </button>
        )}
      </header>
      {desktopSettings && panel === "settings" && (
        <div class="settings-anchor">
          <DesktopSettingsPanel store={desktopSettings} onClose={closePanel} />
        </div>
      )}
      {remote && panel === "phone" && (
        <div class="settings-anchor">
          <PhonePanel store={remote} onClose={closePanel} />
        </div>
      )}
      <CredentialNoticeBanner info={hubInfo} />
      <div class="panes">
        <aside class="list-pane" aria-label="Sessions">
          <SessionList state={state} selectedId={sessionId} onRetry={() => void store.loadSnapshot()} />
          <MachineList store={store} state={state} />
          {owner && (
            <nav class="owner-nav-list" aria-label="Audit and policy">
              <a href="#/audit">Audit log</a>
              <a href="#/policy">Approval policy</a>
            </nav>
          )}
        </aside>
        <main class="detail-pane">
          {ownerView?.kind === "audit" ? (
            <AuditView api={store.api} state={state} sessionId={ownerView.sessionId} />
          ) : ownerView?.kind === "policy" ? (
            <PolicyView api={store.api} />
          ) : sessionId ? (
            <SessionView key={sessionId} store={store} state={state} sessionId={sessionId} desktop={desktopSettings} owner={owner} />
          ) : (
            <div class="empty-detail">
              <p>Select a session to watch it and answer its requests.</p>
            </div>
          )}
        </main>
      </div>
      <ApprovalToasts toasts={toastViews} onDismiss={(id) => setToasts((t) => dismissToast(t, id))} />
      {remote && route.kind === "pair-phone" && (
        <PairPhoneDialog
          api={store.api}
          remote={remote}
          onClose={closePairDialog}
          onSetUp={() => {
            navigateTo(null);
            setPanel("phone");
          }}
        />
      )}
    </div>
  );
}
