// Owner only: "Phone" in the header opens this panel: phone access state and
// provider, the plaintext consent, "Pair phone…", and the paired devices.
import { useEffect, useRef, useState } from "preact/hooks";
import type { Device } from "../generated/Device";
import type { RemoteAccess } from "../generated/RemoteAccess";
import { useNow } from "../hub";
import type { ConsentKind } from "../api";
import {
  canTurnOn,
  consentTarget,
  defaultProviderForm,
  expectedTransport,
  needsConsent,
  PROVIDER_KINDS,
  providerTitle,
  remoteStateLabel,
  transportLabel,
  type ProviderForm,
  type ProviderKind,
  type RemoteAccessStore,
} from "../remote";
import { PAIR_PHONE_HASH } from "../routing";
import { relativeTime } from "../sessionFormat";
import { PhoneIcon } from "./icons";

export const PHONE_PANEL_ID = "phone-panel";

/** Re-renders on every change of the store. */
export function useRemoteAccess(store: RemoteAccessStore): RemoteAccessStore {
  const [, setTick] = useState(0);
  useEffect(() => store.subscribe(() => setTick((n) => n + 1)), [store]);
  return store;
}

/** Whether phone access is on (anything but off), and over a plaintext path. */
function onAndPlaintext(access: RemoteAccess | null): boolean {
  return access !== null && access.state !== "off" && access.transport === "plaintext";
}

export function PhoneButton(props: { store: RemoteAccessStore; open: boolean; onToggle: () => void }) {
  const { access } = useRemoteAccess(props.store);
  const state = access?.state ?? "off";
  const plaintext = onAndPlaintext(access);
  return (
    <button
      type="button"
      class={`ghost phone-button ${props.open ? "active" : ""} ${state !== "off" ? "remote-on" : ""} ${plaintext ? "remote-plaintext" : ""}`}
      onClick={props.onToggle}
      data-testid="open-phone"
      data-remote-state={state}
      aria-expanded={props.open ? "true" : "false"}
      aria-controls={PHONE_PANEL_ID}
      aria-label={`Phone access: ${remoteStateLabel[state]}${plaintext ? ", not encrypted" : ""}`}
      title={plaintext ? "Phone access is on without encryption" : "Phone access"}
    >
      <PhoneIcon />
      <span class="phone-label">Phone</span>
      {state !== "off" && <span class={`remote-dot remote-dot-${state}`} aria-hidden="true" />}
    </button>
  );
}

function TransportLine(props: { access: RemoteAccess }) {
  const { access } = props;
  if (!access.transport) return null;
  const plaintext = access.transport === "plaintext";
  return (
    <p
      class={`transport ${plaintext ? "transport-plaintext" : "transport-tls"}`}
      data-testid="remote-transport"
      data-transport={access.transport}
    >
      {transportLabel(access.transport, access.provider?.kind)}
    </p>
  );
}

export function PhonePanel(props: { store: RemoteAccessStore; onClose: () => void }) {
  const { store, onClose } = props;
  useRemoteAccess(store);
  const { access, loadError, busy } = store;
  const panel = useRef<HTMLElement>(null);
  const [form, setForm] = useState<ProviderForm>(defaultProviderForm);
  const [accepted, setAccepted] = useState(false);
  const [error, setError] = useState<string | null>(null);

  // Fresh state and devices on every open; polls while starting.
  useEffect(() => {
    const unwatch = store.watch();
    panel.current?.focus();
    return unwatch;
  }, [store]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [onClose]);

  // A plaintext provider's notice names its address, so it is fetched for the
  // address typed (after a pause in typing); the tick starts unset each time.
  const target = consentTarget(form);
  useEffect(() => {
    setAccepted(false);
    if (!needsConsent(form.kind) || (form.kind === "bore" && !target)) return;
    const timer = setTimeout(() => void store.loadConsent(form.kind as ConsentKind, target), 400);
    return () => clearTimeout(timer);
  }, [store, form.kind, target]);

  const consent = needsConsent(form.kind) ? store.consent(form.kind as ConsentKind, target) : null;
  const notice = consent?.status === "ready" ? consent.notice : null;
  // The hub serves this path with its own certificate (HTTPS): nothing to accept.
  const encrypted = consent?.status === "ready" && consent.notice === null;
  const state = access?.state ?? "off";

  const turnOn = async () => {
    setError(null);
    const r = await store.turnOn(form, accepted);
    if (!r.ok) {
      setError(r.error);
      if (r.consentChanged) setAccepted(false);
    }
  };

  const turnOff = async () => {
    setError(null);
    const r = await store.turnOff();
    if (!r.ok) setError(r.error);
  };

  const field = (key: keyof ProviderForm) => (e: Event) =>
    setForm((f) => ({ ...f, [key]: (e.currentTarget as HTMLInputElement).value }));

  return (
    <section
      id={PHONE_PANEL_ID}
      class="settings-panel phone-panel"
      data-testid="phone-panel"
      aria-labelledby="phone-panel-title"
      tabIndex={-1}
      ref={panel}
    >
      <div class="settings-inner">
        <div class="settings-head">
          <h2 id="phone-panel-title">Phone access</h2>
          <button type="button" class="ghost" onClick={onClose}>
            Close
          </button>
        </div>

        {!access && !loadError && <p class="muted settings-loading">Loading…</p>}
        {loadError && (
          <p class="settings-error" role="alert" data-testid="remote-load-error">
            {loadError}{" "}
            <button type="button" class="link" onClick={() => void store.load()}>
              Retry
            </button>
          </p>
        )}

        {access && (
          <div class="remote-status" data-testid="remote-state" data-state={access.state}>
            <p class="remote-state-line">
              <span class={`remote-dot remote-dot-${access.state}`} aria-hidden="true" />
              <strong>{remoteStateLabel[access.state]}</strong>
              {access.provider && access.state !== "off" && <span class="muted"> · {providerTitle[access.provider.kind]}</span>}
            </p>
            {access.public_url && access.state !== "off" && (
              <p class="remote-url">
                <span class="field-label">Address</span>{" "}
                <code data-testid="remote-url">{access.public_url}</code>
              </p>
            )}
            {access.state !== "off" && <TransportLine access={access} />}
            {access.detail && access.state !== "off" && access.state !== "up" && (
              <p class="remote-detail" data-testid="remote-detail">
                {access.detail}
              </p>
            )}
            {access.failures > 0 && access.state !== "off" && (
              <p class="hint">
                {access.failures} failure{access.failures === 1 ? "" : "s"} since it was turned on.
              </p>
            )}
          </div>
        )}

        {onAndPlaintext(access) && (
          <p class="plaintext-warning" role="alert" data-testid="plaintext-warning">
            <strong>NOT encrypted:</strong> anyone on this network can read the traffic between the phone and this
            computer, including the pairing code and your sessions. Turn it off when you no longer need it.
          </p>
        )}

        {access && state !== "off" && (
          <div class="remote-actions">
            <button
              type="button"
              class="primary"
              data-testid="pair-phone"
              disabled={state !== "up"}
              title={state === "up" ? "Show a QR code and a code to type on the phone" : "Available once phone access is on"}
              onClick={() => {
                onClose();
                window.location.hash = PAIR_PHONE_HASH;
              }}
            >
              Pair phone…
            </button>
            <button type="button" data-testid="remote-off" disabled={busy} onClick={() => void turnOff()}>
              Turn off
            </button>
          </div>
        )}

        {access && state === "off" && (
          <form
            class="remote-form"
            onSubmit={(e) => {
              e.preventDefault();
              void turnOn();
            }}
          >
            <fieldset class="provider-choice">
              <legend>How the phone reaches this computer</legend>
              {PROVIDER_KINDS.map((kind) => (
                <ProviderOption
                  key={kind}
                  kind={kind}
                  checked={form.kind === kind}
                  encrypted={form.kind === kind && encrypted}
                  onChoose={() => {
                    setError(null);
                    setForm((f) => ({ ...f, kind }));
                  }}
                />
              ))}
            </fieldset>

            {form.kind === "lan" && (
              <div class="provider-fields">
                <label>
                  Address to listen on
                  <input
                    type="text"
                    data-testid="lan-bind"
                    value={form.lanBind}
                    onInput={field("lanBind")}
                    placeholder="automatic"
                    autoCapitalize="off"
                    spellcheck={false}
                  />
                </label>
                <label>
                  Port
                  <input
                    type="text"
                    data-testid="lan-port"
                    value={form.lanPort}
                    onInput={field("lanPort")}
                    placeholder="any free port"
                    inputMode="numeric"
                  />
                </label>
                <p class="hint">The phone must be on the same network (Wi-Fi) as this computer.</p>
              </div>
            )}
            {form.kind === "bore" && (
              <div class="provider-fields">
                <label>
                  bore server host
                  <input
                    type="text"
                    data-testid="bore-host"
                    value={form.boreHost}
                    onInput={field("boreHost")}
                    placeholder="bore.example.com"
                    autoCapitalize="off"
                    spellcheck={false}
                  />
                </label>
                <label>
                  Server secret (if it has one)
                  <input
                    type="password"
                    data-testid="bore-secret"
                    value={form.boreSecret}
                    onInput={field("boreSecret")}
                    autoComplete="off"
                  />
                </label>
                <p class="hint">
                  bore relays raw TCP. With the hub's own certificate (<code>HAPI_TLS_CERT</code>) naming this host, the
                  phone gets HTTPS to this computer; without one it is plain HTTP that the bore server can read.
                </p>
              </div>
            )}
            {form.kind === "tailscale" && (
              <p class="hint provider-fields">
                Only devices in your tailnet can reach it (https, through <code>tailscale serve</code>). Tailscale must be
                running and logged in on this computer and on the phone.
              </p>
            )}
            {form.kind === "cloudflared" && (
              <p class="hint provider-fields">
                A public https address through a Cloudflare quick tunnel (needs <code>cloudflared</code>). Cloudflare can
                read the traffic. Live updates use a WebSocket on this path.
              </p>
            )}

            {needsConsent(form.kind) && (
              <div class="consent" data-testid="consent">
                {consent?.status === "loading" && <p class="muted">Loading the notice…</p>}
                {consent?.status === "error" && (
                  <p class="settings-error" role="alert">
                    Could not load the notice: {consent.error}{" "}
                    <button type="button" class="link" onClick={() => needsConsent(form.kind) && void store.loadConsent(form.kind as ConsentKind, target, true)}>
                      Retry
                    </button>
                  </p>
                )}
                {encrypted && (
                  <p class="hint" data-testid="consent-not-needed">
                    {form.kind === "bore"
                      ? `The hub serves HTTPS through the bore server with its own certificate: encrypted to this machine, and the bore server relays it unread. The certificate must name ${target}, and the phone must trust it.`
                      : "The hub serves this address over HTTPS with its own certificate: encrypted to this machine. The phone must trust that certificate."}
                  </p>
                )}
                {notice !== null && (
                  <>
                    <p class="consent-notice" data-testid="consent-notice">
                      {notice}
                    </p>
                    <label class="setting">
                      <input
                        type="checkbox"
                        data-testid="plaintext-consent"
                        checked={accepted}
                        onChange={(e) => setAccepted(e.currentTarget.checked)}
                      />
                      <span>I understand; turn it on without encryption.</span>
                    </label>
                  </>
                )}
              </div>
            )}

            <div class="remote-actions">
              <button type="submit" class="primary" data-testid="remote-on" disabled={busy || !canTurnOn(form, { notice, accepted, encrypted })}>
                {busy ? "Turning on…" : "Turn on"}
              </button>
            </div>
          </form>
        )}

        {error && (
          <p class="settings-error" role="alert" data-testid="remote-error">
            {error}
          </p>
        )}

        <DeviceSection store={store} />
      </div>
    </section>
  );
}

/**
 * `encrypted`: the hub answered that this path needs no consent (LAN or bore
 * with the hub's own certificate), so it is HTTPS to this machine, whatever the
 * provider's usual transport.
 */
function ProviderOption(props: { kind: ProviderKind; checked: boolean; encrypted: boolean; onChoose: () => void }) {
  const { kind } = props;
  const transport = props.encrypted ? "tls_at_this_machine" : expectedTransport(kind);
  return (
    <label class={`provider-option ${props.checked ? "chosen" : ""}`}>
      <input type="radio" name="remote-provider" value={kind} data-testid={`provider-${kind}`} checked={props.checked} onChange={props.onChoose} />
      <span class="provider-text">
        <span class="provider-name">{providerTitle[kind]}</span>
        <span class={`provider-transport ${transport === "plaintext" ? "transport-plaintext" : ""}`}>
          {transportLabel(transport, kind)}
        </span>
      </span>
    </label>
  );
}

function DeviceSection(props: { store: RemoteAccessStore }) {
  const { store } = props;
  const { devices, devicesError, busy } = store;
  const now = useNow(30_000);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const revoke = async (d: Device) => {
    setError(null);
    const r = await store.revoke(d.id);
    if (!r.ok) setError(`Could not revoke ${d.name}: ${r.error}`);
  };

  const revokeAll = async () => {
    setError(null);
    const r = await store.revokeAll();
    setConfirming(false);
    if (!r.ok) setError(`Could not revoke the devices: ${r.error}`);
  };

  return (
    <section class="devices" aria-labelledby="devices-title">
      <h3 id="devices-title">Paired devices</h3>
      {devicesError && (
        <p class="settings-error" role="alert">
          {devicesError}{" "}
          <button type="button" class="link" onClick={() => void store.loadDevices()}>
            Retry
          </button>
        </p>
      )}
      {devices && devices.length === 0 && <p class="muted">No phones paired.</p>}
      {devices && devices.length > 0 && (
        <ul class="device-list" role="list">
          {devices.map((d) => (
            <li key={d.id} class="device-item" data-testid="device-item" data-device-id={d.id}>
              <span class="device-main">
                <span class="device-name">{d.name}</span>
                <span class="device-sub">
                  Paired <time dateTime={d.created_at}>{relativeTime(d.created_at, now)}</time> · last seen{" "}
                  {d.last_seen_at ? <time dateTime={d.last_seen_at}>{relativeTime(d.last_seen_at, now)}</time> : "never"}
                </span>
              </span>
              <button type="button" class="danger" data-testid="revoke-device" data-device-id={d.id} disabled={busy} onClick={() => void revoke(d)}>
                Revoke
              </button>
            </li>
          ))}
        </ul>
      )}
      {!confirming ? (
        <button type="button" class="danger revoke-all" data-testid="revoke-all" disabled={busy} onClick={() => setConfirming(true)}>
          Revoke all and turn off phone access
        </button>
      ) : (
        <div class="confirm" role="alertdialog" aria-labelledby="revoke-all-q" data-testid="revoke-all-confirm-box">
          <p id="revoke-all-q">
            Every paired phone loses access at once and phone access is turned off. Phones must pair again afterwards.
          </p>
          <div class="remote-actions">
            <button type="button" class="danger" data-testid="revoke-all-confirm" disabled={busy} onClick={() => void revokeAll()}>
              Revoke all
            </button>
            <button type="button" data-testid="revoke-all-cancel" onClick={() => setConfirming(false)}>
              Cancel
            </button>
          </div>
        </div>
      )}
      {error && (
        <p class="settings-error" role="alert" data-testid="devices-error">
          {error}
        </p>
      )}
    </section>
  );
}
