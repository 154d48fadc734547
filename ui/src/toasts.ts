// In-page approval toasts: while the page is open, an approval that turns up
// pending shows a toast (session, tool, command, "Open"). Pure reductions;
// the App feeds them the pending approvals on every state change.
import { describeToolInput } from "./conversation";
import type { Approval } from "./generated/Approval";
import type { Session } from "./generated/Session";
import { projectName } from "./sessionFormat";

export interface ToastState {
  /** The first snapshot was taken: what was pending then is not "new". */
  primed: boolean;
  /** Approval ids seen pending (toasted or not): each toasts at most once. */
  seen: ReadonlySet<string>;
  /** Toasts on screen, oldest first. */
  visible: readonly string[];
}

export const initialToasts: ToastState = { primed: false, seen: new Set(), visible: [] };

/** At most this many toasts at once; the oldest give way. */
export const MAX_TOASTS = 3;

/**
 * Next toast state for the current pending approvals.
 *
 * - Before `ready` (the first snapshot is loaded) nothing toasts; the first
 *   ready call only records what is already pending (the count in the header
 *   covers those).
 * - A newly pending approval toasts unless its session is the one on screen
 *   (its card is right there).
 * - A toast goes away when its approval is no longer pending (decided here or
 *   elsewhere, or cancelled) or its session is opened.
 */
export function nextToasts(
  prev: ToastState,
  pending: readonly Approval[],
  opts: { ready: boolean; openSessionId: string | null },
): ToastState {
  if (!opts.ready) return prev;
  const pendingIds = new Set(pending.map((a) => a.id));
  if (!prev.primed) return { primed: true, seen: pendingIds, visible: [] };
  const seen = new Set(prev.seen);
  let visible = prev.visible.filter((id) => pendingIds.has(id));
  const onScreen = (a: Approval) => a.session_id !== null && a.session_id === opts.openSessionId;
  visible = visible.filter((id) => {
    const a = pending.find((p) => p.id === id);
    return a !== undefined && !onScreen(a);
  });
  for (const a of pending) {
    if (seen.has(a.id)) continue;
    seen.add(a.id);
    if (!onScreen(a)) visible.push(a.id);
  }
  if (visible.length > MAX_TOASTS) visible = visible.slice(visible.length - MAX_TOASTS);
  const changed = visible.length !== prev.visible.length || visible.some((id, i) => id !== prev.visible[i]);
  if (!changed && seen.size === prev.seen.size) return prev;
  return { primed: true, seen, visible };
}

/** The person closed a toast. */
export function dismissToast(prev: ToastState, id: string): ToastState {
  if (!prev.visible.includes(id)) return prev;
  return { ...prev, visible: prev.visible.filter((v) => v !== id) };
}

export interface ToastView {
  id: string;
  /** Project of the session, or "New session" for a machine-scoped request. */
  title: string;
  tool: string;
  /** The command (or file, URL, …), one line, shortened. */
  detail: string;
  /** Where "Open" goes. */
  href: string;
}

const MAX_DETAIL = 140;

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > MAX_DETAIL ? `${flat.slice(0, MAX_DETAIL - 1)}…` : flat;
}

/** What a toast shows for an approval. */
export function toastView(approval: Approval, session: Session | undefined): ToastView {
  const { text } = describeToolInput(approval.input);
  if (approval.session_id === null) {
    return { id: approval.id, title: "New session", tool: approval.tool, detail: oneLine(text), href: "#/" };
  }
  return {
    id: approval.id,
    title: session ? projectName(session.cwd) : "Session",
    tool: approval.tool,
    detail: oneLine(text),
    href: `#/session/${encodeURIComponent(approval.session_id)}`,
  };
}
