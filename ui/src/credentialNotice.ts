// The hub's credential notice (`GET /api/hub` → `credentials.notice`): set
// when the owner token could not go into the OS keychain. Shown as a warning
// banner that can be dismissed until the page is reloaded.
import { ApiError, type HubApi } from "./api";
import type { HubInfo } from "./generated/HubInfo";

/** The notice to show, if any (blank notices are none). */
export function credentialNoticeText(info: HubInfo | null): string | null {
  const notice = info?.credentials.notice;
  return typeof notice === "string" && notice.trim() ? notice.trim() : null;
}

export type HubInfoLoad =
  /** The hub answered (`info` null: too old for `/api/hub`, or an odd answer). */
  | { status: "done"; info: HubInfo | null }
  /** Could not ask (hub unreachable, 5xx, 401): try again later. */
  | { status: "failed"; error: string };

/** Asks for `/api/hub`; never throws. A 404 (older hub) is a quiet "no info". */
export async function loadHubInfo(api: Pick<HubApi, "hubInfo">): Promise<HubInfoLoad> {
  try {
    return { status: "done", info: await api.hubInfo() };
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return { status: "done", info: null };
    return { status: "failed", error: e instanceof Error ? e.message : String(e) };
  }
}

/** Notices dismissed during this page load (a reload shows them again). */
export class NoticeDismissals {
  private readonly texts = new Set<string>();

  isDismissed(text: string): boolean {
    return this.texts.has(text);
  }

  dismiss(text: string): void {
    this.texts.add(text);
  }

  /** What to show: the notice, unless this very text was dismissed. */
  visible(info: HubInfo | null): string | null {
    const text = credentialNoticeText(info);
    return text !== null && !this.isDismissed(text) ? text : null;
  }
}

/** This page load's dismissals (module state: lives exactly as long as the page). */
export const pageDismissals = new NoticeDismissals();
