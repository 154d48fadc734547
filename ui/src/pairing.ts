// Pairing a phone.
//
// Owner side (`#/pair-phone`): `PairingOffer` asks the hub for an offer (QR
// code + typed code, valid 5 minutes), counts down, turns "expired" at the
// deadline, can make a new one, notices when a new device shows up, and
// withdraws the offer when the dialog closes (also an answer that arrives
// after closing).
//
// Phone side (`#/pair/<secret>`, `#/pair`): builds the `POST /pair` body,
// explains the hub's errors, and picks a default device name.
import { ApiError, pairDevice, type FetchFn, type HubApi } from "./api";
import type { Device } from "./generated/Device";
import type { PairDevice } from "./generated/PairDevice";
import type { PairedDevice } from "./generated/PairedDevice";
import type { Pairing } from "./generated/Pairing";
import { Observable } from "./observable";

/** How long an offer is valid (the hub's rule; `expires_at` is authoritative). */
export const OFFER_LIFETIME_MS = 5 * 60_000;

/** While the dialog is open, the device list is re-read this often to notice the phone pairing. */
export const DEVICE_POLL_MS = 2000;

/**
 * The local deadline of an offer: its `expires_at`, but never later than five
 * minutes after it arrived (a skewed or garbled time would otherwise show a
 * code the hub no longer takes).
 */
export function offerDeadline(expiresAt: string, receivedAt: number): number {
  const parsed = Date.parse(expiresAt);
  const cap = receivedAt + OFFER_LIFETIME_MS;
  return Number.isFinite(parsed) ? Math.min(parsed, cap) : cap;
}

/** Milliseconds left until `deadline` (never negative). */
export function msLeft(deadline: number, now: number): number {
  return Math.max(0, deadline - now);
}

/** `4:05` for 245 s; rounds up, so it reads 0:00 only at the deadline. */
export function formatCountdown(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * The hub's QR SVG as a `data:` URL for an `<img>`: the markup is never put
 * into the page's DOM, so nothing in it can run or style the page.
 */
export function svgDataUrl(svg: string): string {
  const bytes = new TextEncoder().encode(svg);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return `data:image/svg+xml;base64,${btoa(binary)}`;
}

export type OfferState =
  | { status: "loading" }
  | { status: "ready"; offer: Pairing; deadline: number }
  | { status: "expired"; offer: Pairing }
  /** A new device appeared while the offer was shown. */
  | { status: "paired"; device: Device }
  /** `code` is the hub's error code (`remote_off`: phone access is off). */
  | { status: "error"; code: string; message: string }
  | { status: "closed" };

export type OfferApi = Pick<HubApi, "createPairing" | "withdrawPairing" | "devices">;

function offerErrorText(e: unknown): { code: string; message: string } {
  if (e instanceof ApiError) {
    if (e.code === "remote_off") return { code: e.code, message: "Phone access is off. Turn it on first (Phone in the header)." };
    if (e.code === "network") return { code: e.code, message: "Hub unreachable." };
    return { code: e.code, message: e.message || e.code };
  }
  return { code: "internal", message: e instanceof Error ? e.message : String(e) };
}

/** One pairing dialog's offer. */
export class PairingOffer extends Observable {
  private current: OfferState = { status: "loading" };
  private knownDevices: Set<string> | null = null;
  /** Offers made and not yet withdrawn. */
  private readonly outstanding = new Set<string>();
  private generation = 0;

  constructor(
    private readonly api: OfferApi,
    private readonly clock: () => number = () => Date.now(),
  ) {
    super();
  }

  get state(): OfferState {
    return this.current;
  }

  /** Read through a method: TypeScript would keep a narrowing across `await`. */
  private isClosed(): boolean {
    return this.current.status === "closed";
  }

  private set(next: OfferState): void {
    this.current = next;
    this.emit();
  }

  /** Asks for an offer (withdrawing the previous one, if still out). */
  async open(): Promise<void> {
    if (this.isClosed()) return;
    const gen = ++this.generation;
    this.withdrawAll();
    this.set({ status: "loading" });
    if (this.knownDevices === null) {
      try {
        this.knownDevices = new Set((await this.api.devices()).map((d) => d.id));
      } catch {
        // Without a baseline the dialog simply won't notice the pairing.
      }
    }
    let offer: Pairing;
    try {
      offer = await this.api.createPairing();
    } catch (e) {
      if (gen === this.generation && !this.isClosed()) this.set({ status: "error", ...offerErrorText(e) });
      return;
    }
    this.outstanding.add(offer.id);
    if (gen !== this.generation || this.isClosed()) {
      // Closed (or renewed) while the hub was answering: withdraw it at once.
      this.withdrawAll();
      return;
    }
    this.set({ status: "ready", offer, deadline: offerDeadline(offer.expires_at, this.clock()) });
  }

  /** Call every second or so: turns a ready offer "expired" at its deadline. */
  tick(): void {
    const s = this.current;
    if (s.status === "ready" && this.clock() >= s.deadline) {
      // The hub forgets it on its own; nothing to withdraw.
      this.outstanding.delete(s.offer.id);
      this.set({ status: "expired", offer: s.offer });
    }
  }

  /** Re-reads the devices; a device not there when the dialog opened means the phone paired. */
  async checkPaired(): Promise<void> {
    if (this.current.status !== "ready" || this.knownDevices === null) return;
    let devices: Device[];
    try {
      devices = await this.api.devices();
    } catch {
      return;
    }
    if (this.current.status !== "ready") return;
    const fresh = devices.find((d) => !this.knownDevices!.has(d.id));
    if (fresh) {
      // The offer is used up; withdrawing it is harmless and makes sure.
      this.withdrawAll();
      this.set({ status: "paired", device: fresh });
    }
  }

  /** The dialog closes: withdraw whatever is out, ignore late answers. */
  close(): void {
    this.generation += 1;
    this.withdrawAll();
    this.set({ status: "closed" });
  }

  private withdrawAll(): void {
    for (const id of this.outstanding) {
      void this.api.withdrawPairing(id).catch(() => {
        // Expired or already used: nothing left to withdraw.
      });
    }
    this.outstanding.clear();
  }
}

// ---------------------------------------------------------------------------
// Phone side.

/** A name for this device from its user agent ("iPhone", "Android phone", …). */
export function defaultDeviceName(userAgent: string): string {
  const ua = userAgent || "";
  if (/iPhone/i.test(ua)) return "iPhone";
  if (/iPad/i.test(ua)) return "iPad";
  if (/Android/i.test(ua)) return /Mobile/i.test(ua) ? "Android phone" : "Android tablet";
  if (/Macintosh|Mac OS X/i.test(ua)) return "Mac";
  if (/Windows/i.test(ua)) return "Windows PC";
  if (/CrOS/i.test(ua)) return "Chromebook";
  if (/Linux/i.test(ua)) return "Linux computer";
  return "Phone";
}

export const MAX_DEVICE_NAME = 64;

/** The `POST /pair` body, or what is missing. Exactly one of secret and code. */
export function pairBody(input: { secret: string | null; code: string; name: string }): { body: PairDevice } | { error: string } {
  const device_name = input.name.trim().slice(0, MAX_DEVICE_NAME);
  if (!device_name) return { error: "Give this device a name." };
  if (input.secret) return { body: { secret: input.secret, device_name } };
  const code = input.code.trim();
  if (!code) return { error: "Enter the code shown on the computer." };
  return { body: { code, device_name } };
}

/** What to tell the person when `POST /pair` fails. */
export function pairErrorText(e: unknown, withSecret: boolean): string {
  if (e instanceof ApiError) {
    switch (e.code) {
      case "pairing_invalid":
        return withSecret
          ? "This pairing link is no longer valid (it was used, withdrawn or has expired). Make a new code on the computer and scan it again."
          : "That code is wrong or has expired. Check it, or make a new code on the computer.";
      case "pairing_locked":
        return "Too many attempts. Try again in a few minutes.";
      case "remote_off":
        return "Phone access was turned off on the computer.";
      case "forbidden_origin":
        return "The hub refused this page's address. Open the link from the QR code, or the address shown on the computer.";
      case "network":
        return "Could not reach the hub. Check that this phone can reach the computer (same network, or the tunnel is on).";
      case "not_found":
        return "This address does not take pairings. Open the link from the QR code, or the address shown on the computer.";
      default:
        return e.message || e.code;
    }
  }
  return e instanceof Error ? e.message : String(e);
}

/**
 * Pairs this device. Resolves with the device and its token, or rejects with
 * the text to show.
 */
export async function pairThisDevice(
  input: { secret: string | null; code: string; name: string },
  fetchFn?: FetchFn,
): Promise<PairedDevice> {
  const built = pairBody(input);
  if ("error" in built) throw new Error(built.error);
  try {
    return await pairDevice(built.body, fetchFn);
  } catch (e) {
    throw new Error(pairErrorText(e, input.secret !== null));
  }
}

/** The address after pairing: same page, the sessions list, no secret left in it. */
export function urlAfterPairing(location: { pathname: string; search: string }): string {
  return `${location.pathname}${location.search}#/`;
}

/** The address while pairing by QR: the secret is taken out of the address bar (and history) at once. */
export function urlWithoutSecret(location: { pathname: string; search: string }): string {
  return `${location.pathname}${location.search}#/pair`;
}

/**
 * The address to type on a phone that cannot scan: the offer's URL without
 * the secret, on the typed-code form (`https://host/#/pair`).
 */
export function pairWithCodeUrl(offerUrl: string): string {
  const i = offerUrl.indexOf("#");
  return `${i >= 0 ? offerUrl.slice(0, i) : offerUrl}#/pair`;
}
