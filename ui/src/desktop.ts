// The desktop app (Tauri) shows this UI in its own webview and talks to it
// through two globals, both absent in a plain browser:
//
// - `window.__HAPI_DESKTOP__ = { token }`, injected before the page's scripts
//   run: the owner token (used as is, never persisted) and the marker that we
//   run inside the app;
// - `window.__TAURI__.core.invoke(cmd, args)` (the app sets `withGlobalTauri`):
//   the app's commands, here its settings.
//
// Everything reads the globals on each call (no caching), so tests can stub
// `window` with `vi.stubGlobal`.
import type { DecisionChannel } from "./generated/DecisionChannel";
import type { DesktopSettings } from "./generated/DesktopSettings";
import { Observable } from "./observable";

/** What the desktop app injects as `window.__HAPI_DESKTOP__`. */
export interface HapiDesktopGlobal {
  /** The hub's owner token. */
  token?: string;
}

/** The part of `window.__TAURI__` we use. */
export interface TauriGlobal {
  core?: {
    invoke?: (cmd: string, args?: Record<string, unknown>) => Promise<unknown>;
  };
}

declare global {
  interface Window {
    __HAPI_DESKTOP__?: HapiDesktopGlobal;
    __TAURI__?: TauriGlobal;
  }
}

function win(): (Window & typeof globalThis) | undefined {
  return typeof window === "undefined" ? undefined : window;
}

/** The injected desktop global, if this page runs inside the desktop app. */
export function desktopGlobal(): HapiDesktopGlobal | null {
  const g = win()?.__HAPI_DESKTOP__;
  return typeof g === "object" && g !== null ? g : null;
}

/** True inside the desktop app's webview (the desktop global exists). */
export function isDesktopApp(): boolean {
  return desktopGlobal() !== null;
}

/** The owner token the desktop app injected, or null (plain browser, or none given). */
export function desktopToken(): string | null {
  const t = desktopGlobal()?.token;
  return typeof t === "string" && t.trim() ? t.trim() : null;
}

/** Where our approval decisions are made, as recorded by the hub. */
export function decisionChannel(): DecisionChannel {
  return isDesktopApp() ? "desktop_window" : "web";
}

// ---------------------------------------------------------------------------
// Settings bridge: the app's Tauri commands.

type Invoke = (cmd: string, args?: Record<string, unknown>) => Promise<unknown>;

/** A failed bridge call, with a message fit for the UI. */
export class DesktopBridgeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DesktopBridgeError";
  }
}

/** Tauri rejects with whatever the command returned as its error (often a string). */
export function bridgeErrorText(e: unknown): string {
  if (typeof e === "string" && e.trim()) return e.trim();
  if (e instanceof Error && e.message) return e.message;
  if (typeof e === "object" && e !== null) {
    const m = (e as { message?: unknown }).message;
    if (typeof m === "string" && m) return m;
    try {
      return JSON.stringify(e);
    } catch {
      // fall through
    }
  }
  return "The desktop app did not answer";
}

export function isDesktopSettings(v: unknown): v is DesktopSettings {
  if (typeof v !== "object" || v === null) return false;
  const s = v as Record<string, unknown>;
  return (
    typeof s.autostart === "boolean" &&
    typeof s.notifications === "boolean" &&
    Array.isArray(s.muted_sessions) &&
    s.muted_sessions.every((x) => typeof x === "string")
  );
}

/**
 * Typed calls of the desktop app's settings commands. Every method resolves
 * with the settings as they are after the call, or rejects with a
 * `DesktopBridgeError`.
 */
export class DesktopBridge {
  constructor(private readonly invoke: Invoke) {}

  private async call(cmd: string, args?: Record<string, unknown>): Promise<DesktopSettings> {
    let answer: unknown;
    try {
      answer = await this.invoke(cmd, args);
    } catch (e) {
      throw new DesktopBridgeError(bridgeErrorText(e));
    }
    if (!isDesktopSettings(answer)) throw new DesktopBridgeError(`Unexpected answer from the desktop app (${cmd})`);
    return answer;
  }

  /** `desktop_settings` */
  settings(): Promise<DesktopSettings> {
    return this.call("desktop_settings");
  }

  /** `set_autostart { enabled }` */
  setAutostart(enabled: boolean): Promise<DesktopSettings> {
    return this.call("set_autostart", { enabled });
  }

  /** `set_notifications { enabled }` */
  setNotifications(enabled: boolean): Promise<DesktopSettings> {
    return this.call("set_notifications", { enabled });
  }

  /** `set_session_notifications { sessionId, enabled }` (Tauri maps `sessionId` to `session_id`). */
  setSessionNotifications(sessionId: string, enabled: boolean): Promise<DesktopSettings> {
    return this.call("set_session_notifications", { sessionId, enabled });
  }
}

/** The bridge, or null outside the desktop app or without `__TAURI__.core.invoke`. */
export function desktopBridge(): DesktopBridge | null {
  if (!isDesktopApp()) return null;
  const core = win()?.__TAURI__?.core;
  const invoke = core?.invoke;
  if (typeof invoke !== "function") return null;
  return new DesktopBridge((cmd, args) => (args === undefined ? invoke.call(core, cmd) : invoke.call(core, cmd, args)));
}

/** Whether approval notifications are on for one session (not muted). */
export function sessionNotificationsOn(settings: DesktopSettings, sessionId: string): boolean {
  return !settings.muted_sessions.includes(sessionId);
}

/**
 * The desktop settings shared by the settings panel and the per-session
 * toggles. Components subscribe; failed changes reject (with a UI message)
 * and leave the settings as they were.
 */
export class DesktopSettingsStore extends Observable {
  private current: DesktopSettings | null = null;
  private error: string | null = null;
  private loading = false;

  /** `bridge` null: running in the app without `__TAURI__` (misconfigured). */
  constructor(private readonly bridge: DesktopBridge | null) {
    super();
  }

  get settings(): DesktopSettings | null {
    return this.current;
  }

  /** Why the settings could not be read, if they could not. */
  get loadError(): string | null {
    return this.error;
  }

  get isLoading(): boolean {
    return this.loading;
  }

  /** (Re)reads the settings; failures end up in `loadError`. */
  async load(): Promise<void> {
    if (!this.bridge) {
      this.error = "Desktop settings are unavailable: the app's command bridge is missing.";
      this.emit();
      return;
    }
    if (this.loading) return;
    this.loading = true;
    this.emit();
    try {
      this.current = await this.bridge.settings();
      this.error = null;
    } catch (e) {
      this.error = bridgeErrorText(e);
    } finally {
      this.loading = false;
      this.emit();
    }
  }

  private async change(call: (b: DesktopBridge) => Promise<DesktopSettings>): Promise<DesktopSettings> {
    if (!this.bridge) throw new DesktopBridgeError("The desktop app's command bridge is missing.");
    const next = await call(this.bridge);
    this.current = next;
    this.error = null;
    this.emit();
    return next;
  }

  setAutostart(enabled: boolean): Promise<DesktopSettings> {
    return this.change((b) => b.setAutostart(enabled));
  }

  setNotifications(enabled: boolean): Promise<DesktopSettings> {
    return this.change((b) => b.setNotifications(enabled));
  }

  setSessionNotifications(sessionId: string, enabled: boolean): Promise<DesktopSettings> {
    return this.change((b) => b.setSessionNotifications(sessionId, enabled));
  }
}
