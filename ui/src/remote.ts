// Phone access, owner side: the remote listener's state and provider, the
// plaintext consent, and the paired devices. Pure helpers plus
// `RemoteAccessStore`, which the phone panel and the pairing dialog share.
import { ApiError, type ConsentKind, type HubApi } from "./api";
import type { Device } from "./generated/Device";
import type { RemoteAccess } from "./generated/RemoteAccess";
import type { RemoteProvider } from "./generated/RemoteProvider";
import type { RemoteState } from "./generated/RemoteState";
import type { SetRemoteAccess } from "./generated/SetRemoteAccess";
import type { TransportSecurity } from "./generated/TransportSecurity";
import { Observable } from "./observable";

export type ProviderKind = RemoteProvider["kind"];

export const PROVIDER_KINDS: ProviderKind[] = ["lan", "tailscale", "cloudflared", "bore"];

export const providerTitle: Record<ProviderKind, string> = {
  lan: "This network (LAN)",
  tailscale: "Tailscale",
  cloudflared: "Cloudflare quick tunnel",
  bore: "bore (your own server)",
};

/**
 * Paths that are plaintext unless the hub serves its own certificate on them:
 * the person must accept the hub's notice before turning them on, unless the
 * hub answers that none is needed (HTTPS with `HAPI_TLS_CERT`).
 */
export function needsConsent(kind: ProviderKind): kind is ConsentKind {
  return kind === "lan" || kind === "bore";
}

/**
 * Where TLS ends on each provider's path (what the hub will report once it is
 * on), without the hub's own certificate: with it, LAN and bore are
 * `tls_at_this_machine` (the consent notice is then `null`).
 */
export function expectedTransport(kind: ProviderKind): TransportSecurity {
  switch (kind) {
    case "tailscale":
      return "tls_at_this_machine";
    case "cloudflared":
      return "tls_at_provider";
    case "lan":
    case "bore":
      return "plaintext";
  }
}

/** Who terminates TLS for a `tls_at_provider` path, for a person. */
function providerParty(kind: ProviderKind | undefined): string {
  switch (kind) {
    case "cloudflared":
      return "Cloudflare";
    case "tailscale":
      return "Tailscale";
    case "bore":
      return "the bore server";
    default:
      return "the tunnel provider";
  }
}

/** The transport label shown wherever a remote path is: who can read the traffic. */
export function transportLabel(transport: TransportSecurity, kind?: ProviderKind): string {
  switch (transport) {
    case "tls_at_this_machine":
      return "Encrypted to this machine";
    case "tls_at_provider":
      return `Encrypted to ${providerParty(kind)}, which can read it`;
    case "plaintext":
      return "NOT encrypted: anyone on this network can read it";
  }
}

export const remoteStateLabel: Record<RemoteState, string> = {
  off: "Off",
  starting: "Starting…",
  up: "On",
  down: "Reconnecting…",
  failed: "Failed",
};

/** Polled while the path is not settled (starting, or reconnecting after a loss). */
export function shouldPoll(state: RemoteState): boolean {
  return state === "starting" || state === "down";
}

export const POLL_MS = 1000;

/** The provider chooser's fields, as typed. */
export interface ProviderForm {
  kind: ProviderKind;
  /** LAN address to listen on; empty: the hub picks one. */
  lanBind: string;
  /** LAN port; empty: any free one (0). */
  lanPort: string;
  boreHost: string;
  boreSecret: string;
}

/**
 * The address a plaintext provider's consent notice names: the LAN bind address
 * or the bore server's host ("" for the hub's default LAN address).
 */
export function consentTarget(form: ProviderForm): string {
  if (form.kind === "lan") return form.lanBind.trim();
  if (form.kind === "bore") return form.boreHost.trim();
  return "";
}

function consentKey(kind: ConsentKind, target: string): string {
  return `${kind}\n${target}`;
}

export const defaultProviderForm: ProviderForm = {
  kind: "lan",
  lanBind: "",
  lanPort: "",
  boreHost: "",
  boreSecret: "",
};

/** The provider the form describes, or what is wrong with it. */
export function providerFromForm(form: ProviderForm): { provider: RemoteProvider } | { error: string } {
  switch (form.kind) {
    case "lan": {
      const portText = form.lanPort.trim();
      let port = 0;
      if (portText) {
        if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return { error: "The port must be a number from 0 to 65535." };
        port = Number(portText);
      }
      return { provider: { kind: "lan", bind: form.lanBind.trim(), port } };
    }
    case "bore": {
      const host = form.boreHost.trim();
      if (!host) return { error: "Enter the bore server's host." };
      const secret = form.boreSecret;
      return { provider: secret ? { kind: "bore", host, secret } : { kind: "bore", host } };
    }
    case "tailscale":
      return { provider: { kind: "tailscale" } };
    case "cloudflared":
      return { provider: { kind: "cloudflared" } };
  }
}

/**
 * The `PUT /api/remote` body that turns phone access on, or why it cannot be
 * sent yet. A plaintext provider needs the notice (as the hub gave it) and the
 * person's tick; the notice goes back verbatim. `encrypted`: the hub answered
 * that this path needs no notice (LAN or bore with the hub's certificate).
 */
export function turnOnBody(
  form: ProviderForm,
  consent: { notice: string | null; accepted: boolean; encrypted?: boolean },
): { body: SetRemoteAccess } | { error: string } {
  const built = providerFromForm(form);
  if ("error" in built) return built;
  if (!needsConsent(form.kind) || consent.encrypted) return { body: { provider: built.provider } };
  if (consent.notice === null) return { error: "The notice for this connection has not loaded yet." };
  if (!consent.accepted) return { error: "Read the notice and tick the box to use an unencrypted connection." };
  return { body: { provider: built.provider, plaintext_consent: consent.notice } };
}

/** Whether "Turn on" can be pressed. */
export function canTurnOn(form: ProviderForm, consent: { notice: string | null; accepted: boolean; encrypted?: boolean }): boolean {
  return "body" in turnOnBody(form, consent);
}

function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.code === "network" ? "Hub unreachable" : e.message || e.code;
  return e instanceof Error ? e.message : String(e);
}

/**
 * A consent notice as loaded. `notice: null` when ready: the hub needs no
 * consent on this path after all (LAN or bore when it serves HTTPS with its
 * own certificate, `HAPI_TLS_CERT`).
 */
export type ConsentLoad = { status: "loading" } | { status: "ready"; notice: string | null } | { status: "error"; error: string };

export type TurnOnResult =
  | { ok: true }
  /** `consentChanged`: the hub wanted another notice; it was reloaded and must be accepted again. */
  | { ok: false; error: string; consentChanged?: boolean };

/** What the store needs of `HubApi`. */
export type RemoteApi = Pick<
  HubApi,
  "remoteAccess" | "setRemoteAccess" | "consentNotice" | "devices" | "revokeDevice" | "revokeAllDevices"
>;

type Timers = {
  setTimeout: (fn: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
};

const defaultTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * Remote access state, consent notices and devices for the owner's phone
 * panel. Subscribers are told about every change. While someone watches
 * (`watch()`), `GET /api/remote` is polled as long as the state is starting
 * or reconnecting.
 */
export class RemoteAccessStore extends Observable {
  private current: RemoteAccess | null = null;
  private error: string | null = null;
  private deviceList: Device[] | null = null;
  private devicesErr: string | null = null;
  private readonly consents = new Map<string, ConsentLoad>() // by kind and address;
  private watchers = 0;
  private pollTimer: unknown = null;
  private busyFlag = false;

  constructor(
    private readonly api: RemoteApi,
    private readonly timers: Timers = defaultTimers,
  ) {
    super();
  }

  get access(): RemoteAccess | null {
    return this.current;
  }

  get loadError(): string | null {
    return this.error;
  }

  get devices(): Device[] | null {
    return this.deviceList;
  }

  get devicesError(): string | null {
    return this.devicesErr;
  }

  /** A change (turn on/off, revoke) is in flight. */
  get busy(): boolean {
    return this.busyFlag;
  }

  /** The notice for `kind` at `target` (see [`consentTarget`]). */
  consent(kind: ConsentKind, target = ""): ConsentLoad | null {
    return this.consents.get(consentKey(kind, target)) ?? null;
  }

  private setAccess(access: RemoteAccess): void {
    this.current = access;
    this.error = null;
    this.emit();
    this.schedulePoll();
  }

  /** Starts polling while needed; returns the function that stops watching. */
  watch(): () => void {
    this.watchers += 1;
    void this.load();
    void this.loadDevices();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.watchers -= 1;
      if (this.watchers === 0) this.cancelPoll();
    };
  }

  private cancelPoll(): void {
    if (this.pollTimer !== null) this.timers.clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  private schedulePoll(): void {
    if (this.watchers === 0 || this.pollTimer !== null) return;
    if (!this.current || !shouldPoll(this.current.state)) return;
    this.pollTimer = this.timers.setTimeout(() => {
      this.pollTimer = null;
      void this.load();
    }, POLL_MS);
  }

  /** `GET /api/remote`; a failure ends up in `loadError` (and polling continues if it was polling). */
  async load(): Promise<void> {
    try {
      this.setAccess(await this.api.remoteAccess());
    } catch (e) {
      this.error = errorMessage(e);
      this.emit();
      this.schedulePoll();
    }
  }

  async loadDevices(): Promise<void> {
    try {
      this.deviceList = await this.api.devices();
      this.devicesErr = null;
    } catch (e) {
      this.devicesErr = errorMessage(e);
    }
    this.emit();
  }

  /** Fetches a plaintext provider's consent notice (once; `force` again). */
  async loadConsent(kind: ConsentKind, target = "", force = false): Promise<void> {
    const key = consentKey(kind, target);
    const known = this.consents.get(key);
    if (known && !force && known.status !== "error") return;
    this.consents.set(key, { status: "loading" });
    this.emit();
    try {
      this.consents.set(key, { status: "ready", notice: await this.api.consentNotice(kind, target) });
    } catch (e) {
      this.consents.set(key, { status: "error", error: errorMessage(e) });
    }
    this.emit();
  }

  private consentFor(form: ProviderForm): { notice: string | null; encrypted: boolean } {
    if (!needsConsent(form.kind)) return { notice: null, encrypted: false };
    const c = this.consents.get(consentKey(form.kind, consentTarget(form)));
    return c?.status === "ready" ? { notice: c.notice, encrypted: c.notice === null } : { notice: null, encrypted: false };
  }

  /**
   * Turns phone access on. Nothing is sent while a plaintext provider's notice
   * is not accepted. If the hub still answers 409 `consent_required` (its
   * notice changed), the notice is reloaded and must be accepted again.
   */
  async turnOn(form: ProviderForm, accepted: boolean): Promise<TurnOnResult> {
    const built = turnOnBody(form, { ...this.consentFor(form), accepted });
    if ("error" in built) return { ok: false, error: built.error };
    this.busyFlag = true;
    this.emit();
    try {
      this.setAccess(await this.api.setRemoteAccess(built.body));
      return { ok: true };
    } catch (e) {
      if (e instanceof ApiError && e.code === "consent_required" && needsConsent(form.kind)) {
        await this.loadConsent(form.kind, consentTarget(form), true);
        return {
          ok: false,
          consentChanged: true,
          error: "The hub asks you to confirm the notice again. Read it and tick the box.",
        };
      }
      return { ok: false, error: errorMessage(e) };
    } finally {
      this.busyFlag = false;
      this.emit();
    }
  }

  async turnOff(): Promise<TurnOnResult> {
    this.busyFlag = true;
    this.emit();
    try {
      this.setAccess(await this.api.setRemoteAccess({ provider: null }));
      return { ok: true };
    } catch (e) {
      return { ok: false, error: errorMessage(e) };
    } finally {
      this.busyFlag = false;
      this.emit();
    }
  }

  async revoke(deviceId: string): Promise<TurnOnResult> {
    this.busyFlag = true;
    this.emit();
    try {
      await this.api.revokeDevice(deviceId);
      if (this.deviceList) this.deviceList = this.deviceList.filter((d) => d.id !== deviceId);
      return { ok: true };
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        if (this.deviceList) this.deviceList = this.deviceList.filter((d) => d.id !== deviceId);
        return { ok: true };
      }
      return { ok: false, error: errorMessage(e) };
    } finally {
      this.busyFlag = false;
      this.emit();
      void this.loadDevices();
    }
  }

  /** Revokes every device; the hub also turns phone access off. */
  async revokeAll(): Promise<TurnOnResult> {
    this.busyFlag = true;
    this.emit();
    try {
      await this.api.revokeAllDevices();
      this.deviceList = [];
      return { ok: true };
    } catch (e) {
      return { ok: false, error: errorMessage(e) };
    } finally {
      this.busyFlag = false;
      this.emit();
      void this.load();
      void this.loadDevices();
    }
  }
}
