// Desktop-app-only UI: the settings panel (gear in the header) and the
// per-session "Notify" toggle. Rendered only when running inside the app.
import { useEffect, useRef, useState } from "preact/hooks";
import { bridgeErrorText, sessionNotificationsOn, type DesktopSettingsStore } from "../desktop";
import type { DesktopSettings } from "../generated/DesktopSettings";
import { BellIcon, GearIcon } from "./icons";

export const SETTINGS_PANEL_ID = "desktop-settings";

/** Re-renders the component whenever the desktop settings store changes. */
export function useDesktopSettings(store: DesktopSettingsStore): {
  settings: DesktopSettings | null;
  loadError: string | null;
  loading: boolean;
} {
  const [, setTick] = useState(0);
  useEffect(() => store.subscribe(() => setTick((n) => n + 1)), [store]);
  return { settings: store.settings, loadError: store.loadError, loading: store.isLoading };
}

export function SettingsButton(props: { open: boolean; onToggle: () => void }) {
  return (
    <button
      type="button"
      class={`ghost icon-button ${props.open ? "active" : ""}`}
      onClick={props.onToggle}
      data-testid="open-settings"
      aria-label="Settings"
      aria-expanded={props.open ? "true" : "false"}
      aria-controls={SETTINGS_PANEL_ID}
      title="Settings"
    >
      <GearIcon />
    </button>
  );
}

type Setting = "autostart" | "notifications";

export function DesktopSettingsPanel(props: { store: DesktopSettingsStore; onClose: () => void }) {
  const { store, onClose } = props;
  const { settings, loadError, loading } = useDesktopSettings(store);
  const [pending, setPending] = useState<{ which: Setting; enabled: boolean } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const panel = useRef<HTMLElement>(null);

  // Fresh values on every open (the tray menu may have changed them).
  useEffect(() => {
    void store.load();
    panel.current?.focus();
  }, [store]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [onClose]);

  const change = async (which: Setting, enabled: boolean) => {
    setPending({ which, enabled });
    setError(null);
    try {
      if (which === "autostart") await store.setAutostart(enabled);
      else await store.setNotifications(enabled);
    } catch (e) {
      const what = which === "autostart" ? "start on login" : "notifications";
      setError(`Could not change ${what}: ${bridgeErrorText(e)}`);
    } finally {
      setPending(null);
    }
  };

  const checked = (which: Setting) => (pending?.which === which ? pending.enabled : (settings?.[which] ?? false));
  const shownError = error ?? loadError;

  return (
    <section
      id={SETTINGS_PANEL_ID}
      class="settings-panel"
      data-testid="desktop-settings"
      aria-labelledby="desktop-settings-title"
      tabIndex={-1}
      ref={panel}
    >
      <div class="settings-inner">
        <div class="settings-head">
          <h2 id="desktop-settings-title">Settings</h2>
          <button type="button" class="ghost" onClick={onClose}>
            Close
          </button>
        </div>
        {!settings && loading && <p class="muted settings-loading">Loading…</p>}
        <label class="setting">
          <input
            type="checkbox"
            data-testid="setting-autostart"
            checked={checked("autostart")}
            disabled={!settings || pending !== null}
            onChange={(e) => void change("autostart", e.currentTarget.checked)}
          />
          <span>Start on login</span>
        </label>
        <label class="setting">
          <input
            type="checkbox"
            data-testid="setting-notifications"
            checked={checked("notifications")}
            disabled={!settings || pending !== null}
            onChange={(e) => void change("notifications", e.currentTarget.checked)}
          />
          <span>Desktop notifications for approvals</span>
        </label>
        {settings && (
          <p class="hint">
            {settings.muted_sessions.length
              ? `Muted in ${settings.muted_sessions.length} session${settings.muted_sessions.length === 1 ? "" : "s"} (“Notify” in a session's header).`
              : "Mute single sessions with “Notify” in a session's header."}
          </p>
        )}
        {shownError && (
          <p class="settings-error" role="alert" data-testid="desktop-settings-error">
            {shownError}
            {!settings && !loading && (
              <>
                {" "}
                <button type="button" class="link" onClick={() => void store.load()}>
                  Retry
                </button>
              </>
            )}
          </p>
        )}
      </div>
    </section>
  );
}

/**
 * "Notify" in a session's header: mutes/unmutes this session's approval
 * notifications. Hidden until the settings are known.
 */
export function SessionNotifyToggle(props: {
  store: DesktopSettingsStore;
  sessionId: string;
  onError: (message: string | null) => void;
}) {
  const { store, sessionId, onError } = props;
  const { settings } = useDesktopSettings(store);
  const [busy, setBusy] = useState(false);
  if (!settings) return null;
  const on = sessionNotificationsOn(settings, sessionId);

  const toggle = async () => {
    setBusy(true);
    onError(null);
    try {
      await store.setSessionNotifications(sessionId, !on);
    } catch (e) {
      onError(`Could not ${on ? "mute" : "unmute"} this session's notifications: ${bridgeErrorText(e)}`);
    } finally {
      setBusy(false);
    }
  };

  const title = !settings.notifications
    ? "Desktop notifications are off for all sessions (see Settings)"
    : on
      ? "Notifications for this session's approvals are on; click to mute"
      : "This session's approvals raise no notification; click to unmute";

  return (
    <button
      type="button"
      class={`toggle notify-toggle ${on ? "on" : ""} ${settings.notifications ? "" : "globally-off"}`}
      aria-pressed={on ? "true" : "false"}
      aria-label="Notify about this session's approvals"
      title={title}
      disabled={busy}
      onClick={() => void toggle()}
      data-testid="session-notifications"
    >
      <BellIcon off={!on} />
      <span class="notify-label">Notify</span>
    </button>
  );
}
