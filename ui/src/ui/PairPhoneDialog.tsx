// Owner only, route `#/pair-phone` (also where the desktop tray's "Pair
// phone…" opens the window): a pairing offer as a QR code and a typed code,
// with its countdown. Closing the dialog withdraws the offer.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { HubApi } from "../api";
import {
  DEVICE_POLL_MS,
  formatCountdown,
  msLeft,
  PairingOffer,
  pairWithCodeUrl,
  svgDataUrl,
  type OfferState,
} from "../pairing";
import { transportLabel, type RemoteAccessStore } from "../remote";
import { useRemoteAccess } from "./PhonePanel";

function useOffer(offer: PairingOffer): OfferState {
  const [state, setState] = useState(offer.state);
  useEffect(() => {
    setState(offer.state);
    return offer.subscribe(() => setState(offer.state));
  }, [offer]);
  return state;
}

export function PairPhoneDialog(props: {
  api: HubApi;
  remote: RemoteAccessStore;
  onClose: () => void;
  /** Phone access is off: open the phone panel instead. */
  onSetUp: () => void;
}) {
  const { api, onClose } = props;
  const remote = useRemoteAccess(props.remote);
  const offer = useMemo(() => new PairingOffer(api), [api]);
  const state = useOffer(offer);
  // Re-rendered every second for the countdown (read from the clock at render).
  const [, setTick] = useState(0);
  const dialog = useRef<HTMLDivElement>(null);

  useEffect(() => {
    void offer.open();
    // Closing (or leaving the route, or the page) withdraws the offer.
    const onPageHide = () => offer.close();
    window.addEventListener("pagehide", onPageHide);
    return () => {
      window.removeEventListener("pagehide", onPageHide);
      offer.close();
    };
  }, [offer]);

  useEffect(() => {
    dialog.current?.focus();
    if (!remote.access) void remote.load();
  }, [remote]);

  useEffect(() => {
    const t = setInterval(() => {
      setTick((n) => n + 1);
      offer.tick();
    }, 1000);
    const p = setInterval(() => void offer.checkPaired(), DEVICE_POLL_MS);
    return () => {
      clearInterval(t);
      clearInterval(p);
    };
  }, [offer]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  }, [onClose]);

  const providerKind = remote.access?.provider?.kind;

  return (
    <div class="modal-backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div
        class="modal pair-dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="pair-dialog-title"
        data-testid="pair-dialog"
        data-state={state.status}
        tabIndex={-1}
        ref={dialog}
      >
        <div class="settings-head">
          <h2 id="pair-dialog-title">Pair a phone</h2>
          <button type="button" class="ghost" data-testid="pairing-close" onClick={onClose}>
            Close
          </button>
        </div>

        {state.status === "loading" && <p class="muted">Making a pairing code…</p>}

        {state.status === "error" && (
          <div class="pair-error-box">
            <p class="settings-error" role="alert" data-testid="pairing-error" data-code={state.code}>
              {state.message}
            </p>
            {state.code === "remote_off" ? (
              <button type="button" class="primary" data-testid="pairing-setup" onClick={props.onSetUp}>
                Set up phone access
              </button>
            ) : (
              <button type="button" data-testid="pairing-retry" onClick={() => void offer.open()}>
                Try again
              </button>
            )}
          </div>
        )}

        {state.status === "ready" && (
          <div class="pair-offer">
            <div class="pairing-qr" data-testid="pairing-qr">
              <img src={svgDataUrl(state.offer.qr_svg)} alt="QR code with the pairing link" width={240} height={240} />
            </div>
            <p class="pair-instructions">Scan it with the phone's camera. Or open this address on the phone and type the code:</p>
            <p class="pair-url">
              <code data-testid="pairing-url">{pairWithCodeUrl(state.offer.url)}</code>
            </p>
            <p class="pairing-code" data-testid="pairing-code" aria-label={`Pairing code ${state.offer.code.split("").join(" ")}`}>
              {state.offer.code}
            </p>
            <p class="pairing-countdown" data-testid="pairing-countdown">
              Expires in <span class="countdown-time">{formatCountdown(msLeft(state.deadline, Date.now()))}</span> · works once
            </p>
            <p
              class={`transport ${state.offer.transport === "plaintext" ? "transport-plaintext" : "transport-tls"}`}
              data-testid="pairing-transport"
              data-transport={state.offer.transport}
              role={state.offer.transport === "plaintext" ? "alert" : undefined}
            >
              {transportLabel(state.offer.transport, providerKind)}
              {state.offer.transport === "plaintext" && ": the code and everything the phone sees can be read on the way."}
            </p>
          </div>
        )}

        {state.status === "expired" && (
          <div class="pair-expired" data-testid="pairing-expired">
            <p>This code expired. Make a new one to pair a phone.</p>
            <button type="button" class="primary" data-testid="pairing-renew" onClick={() => void offer.open()}>
              Make a new code
            </button>
          </div>
        )}

        {state.status === "paired" && (
          <div class="pair-done" data-testid="pairing-done">
            <p>
              <strong>{state.device.name}</strong> is paired.
            </p>
            <button type="button" class="primary" onClick={onClose}>
              Done
            </button>
          </div>
        )}
      </div>
    </div>
  );
}
