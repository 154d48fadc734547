// Phone side: `#/pair/<secret>` (opened from the QR code) and `#/pair` (a
// typed code). Trades the secret or code for this device's own token.
import { useEffect, useRef, useState } from "preact/hooks";
import type { PairedDevice } from "../generated/PairedDevice";
import { defaultDeviceName, MAX_DEVICE_NAME, pairThisDevice, urlWithoutSecret } from "../pairing";
import { PAIR_WITH_CODE_HASH } from "../routing";

export function PairPage(props: { secret: string | null; onPaired: (paired: PairedDevice) => void }) {
  // The secret is kept in memory only: it leaves the address bar (and the
  // history) at once, so a reload or "back" never shows it again.
  const [secret, setSecret] = useState(props.secret);
  const [code, setCode] = useState("");
  const [name, setName] = useState(() => defaultDeviceName(typeof navigator === "undefined" ? "" : navigator.userAgent));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const codeInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (props.secret) window.history.replaceState(null, "", urlWithoutSecret(window.location));
    setSecret(props.secret);
    setError(null);
  }, [props.secret]);

  const submit = async () => {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      props.onPaired(await pairThisDevice({ secret, code, name }));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  };

  return (
    <div class="signin">
      <form
        class="signin-card pair-card"
        data-testid="pair-page"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <h1>HAPI</h1>
        <p class="muted">Pair this phone with the computer running HAPI.</p>
        {secret ? (
          <p class="hint" data-testid="pair-with-qr">
            Using the code from the QR code.{" "}
            <button
              type="button"
              class="link"
              onClick={() => {
                setSecret(null);
                setError(null);
                setTimeout(() => codeInput.current?.focus(), 0);
              }}
            >
              Type a code instead
            </button>
          </p>
        ) : (
          <>
            <label for="pair-code">Code shown on the computer</label>
            <input
              id="pair-code"
              ref={codeInput}
              type="text"
              autoComplete="one-time-code"
              autoCapitalize="off"
              autoCorrect="off"
              spellcheck={false}
              value={code}
              onInput={(e) => setCode((e.target as HTMLInputElement).value)}
              data-testid="pair-code-input"
            />
            <p class="hint">On the computer: Phone → Pair phone… shows the code (valid for 5 minutes).</p>
          </>
        )}
        <label for="pair-name">Name for this phone</label>
        <input
          id="pair-name"
          type="text"
          maxLength={MAX_DEVICE_NAME}
          value={name}
          onInput={(e) => setName((e.target as HTMLInputElement).value)}
          data-testid="pair-device-name"
        />
        <p class="hint">Shown in the computer's list of paired devices.</p>
        {error && (
          <p class="notice" role="alert" data-testid="pair-error">
            {error}
          </p>
        )}
        <button
          type="submit"
          class="primary"
          data-testid="pair-submit"
          disabled={busy || !name.trim() || (!secret && !code.trim())}
        >
          {busy ? "Pairing…" : "Pair"}
        </button>
        <p class="hint">
          Have the owner token instead? <a href="#/">Sign in</a>
        </p>
      </form>
    </div>
  );
}

/** The hub no longer takes this phone's device token (revoked). */
export function DeviceUnpaired(props: { onSignIn: () => void }) {
  return (
    <div class="signin">
      <div class="signin-card" data-testid="device-unpaired">
        <h1>HAPI</h1>
        <p class="notice" role="alert">
          This phone was unpaired.
        </p>
        <p class="hint">The computer revoked its access. Pair it again to keep watching your sessions.</p>
        <button
          type="button"
          class="primary"
          data-testid="pair-again"
          onClick={() => {
            window.location.hash = PAIR_WITH_CODE_HASH;
          }}
        >
          Pair again
        </button>
        <button type="button" class="ghost" onClick={props.onSignIn}>
          Sign in with a token instead
        </button>
      </div>
    </div>
  );
}
