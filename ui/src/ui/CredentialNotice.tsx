import { useEffect, useRef, useState } from "preact/hooks";
import type { HubApi } from "../api";
import { loadHubInfo, pageDismissals } from "../credentialNotice";
import type { HubInfo } from "../generated/HubInfo";

/**
 * `GET /api/hub`, once per sign-in. If the hub could not be asked (offline,
 * 5xx) it is asked again the next time the event stream goes live; an older
 * hub's 404 counts as an answer (no info).
 */
export function useHubInfo(api: HubApi, live: boolean, enabled = true): HubInfo | null {
  const [info, setInfo] = useState<HubInfo | null>(null);
  const settled = useRef(false);
  const inFlight = useRef(false);
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    return () => {
      mounted.current = false;
    };
  }, []);
  useEffect(() => {
    // Owner only: a paired device's token does not open `/api/hub`.
    if (!enabled || settled.current || inFlight.current) return;
    inFlight.current = true;
    void loadHubInfo(api).then((r) => {
      inFlight.current = false;
      if (r.status !== "done") return;
      settled.current = true;
      if (mounted.current) setInfo(r.info);
    });
  }, [api, live, enabled]);
  return info;
}

/** The credential warning: visible, not blocking, dismissible until reload. */
export function CredentialNoticeBanner(props: { info: HubInfo | null }) {
  const [, setTick] = useState(0);
  const text = pageDismissals.visible(props.info);
  if (!text) return null;
  return (
    <div class="banner warn credential-notice" role="alert" data-testid="credential-notice">
      <p>
        <strong>Token storage: </strong>
        {text}
      </p>
      <button
        type="button"
        class="ghost"
        onClick={() => {
          pageDismissals.dismiss(text);
          setTick((n) => n + 1);
        }}
        data-testid="credential-notice-dismiss"
        aria-label="Dismiss this warning until the page is reloaded"
        title="Hide until the page is reloaded"
      >
        Dismiss
      </button>
    </div>
  );
}
