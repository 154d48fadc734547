import { useState } from "preact/hooks";

export function SignIn(props: { notice: string | null; onSubmit: (token: string) => void }) {
  const [value, setValue] = useState("");
  return (
    <div class="signin">
      <form
        class="signin-card"
        onSubmit={(e) => {
          e.preventDefault();
          const t = value.trim();
          if (t) props.onSubmit(t);
        }}
      >
        <h1>HAPI</h1>
        <p class="muted">Watch and steer your coding agents.</p>
        {props.notice && (
          <p class="notice" role="alert">
            {props.notice}
          </p>
        )}
        <label for="token">Access token</label>
        <input
          id="token"
          type="password"
          autoComplete="current-password"
          autoCapitalize="off"
          spellcheck={false}
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          data-testid="token-input"
        />
        <p class="hint">
          Run <code>hapi auth token</code> on the machine running the hub.
        </p>
        <button type="submit" class="primary" disabled={!value.trim()}>
          Sign in
        </button>
        <p class="hint pair-link">
          On a phone?{" "}
          <a href="#/pair" data-testid="pair-with-code">
            Pair this phone with a code
          </a>
        </p>
      </form>
    </div>
  );
}
