import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, HubApi, pairDevice, type FetchFn } from "./api";
import type { Device } from "./generated/Device";
import type { Pairing } from "./generated/Pairing";
import {
  defaultDeviceName,
  formatCountdown,
  msLeft,
  OFFER_LIFETIME_MS,
  offerDeadline,
  pairBody,
  pairErrorText,
  PairingOffer,
  pairThisDevice,
  pairWithCodeUrl,
  svgDataUrl,
  urlAfterPairing,
  urlWithoutSecret,
  type OfferApi,
} from "./pairing";

afterEach(() => {
  vi.unstubAllGlobals();
});

const device = (id: string, name = "Ana's phone"): Device => ({
  id,
  name,
  created_at: "2026-01-01T00:00:00Z",
  last_seen_at: null,
});

/** A fetch that answers each call from `answers` in turn and records the calls. */
function fakeFetch(...answers: { status: number; body: unknown }[]) {
  const calls: { path: string; init: RequestInit | undefined }[] = [];
  const fn: FetchFn = async (path, init) => {
    calls.push({ path, init });
    const a = answers.shift();
    if (!a) throw new TypeError("Failed to fetch");
    return new Response(typeof a.body === "string" ? a.body : JSON.stringify(a.body), { status: a.status });
  };
  return { fn, calls };
}

const err = (code: string, message = code) => ({ error: { code, message } });

describe("phone: POST /pair", () => {
  it("trades the QR secret for a device token, without any Authorization header", async () => {
    const f = fakeFetch({ status: 200, body: { device: device("d1", "iPhone"), token: "dev-token" } });
    const paired = await pairThisDevice({ secret: "s3cret", code: "", name: " iPhone " }, f.fn);
    expect(paired.token).toBe("dev-token");
    expect(f.calls).toHaveLength(1);
    expect(f.calls[0].path).toBe("/pair");
    expect(f.calls[0].init?.method).toBe("POST");
    expect(JSON.parse(f.calls[0].init!.body as string)).toEqual({ secret: "s3cret", device_name: "iPhone" });
    expect((f.calls[0].init!.headers as Record<string, string>).Authorization).toBeUndefined();
  });

  it("sends the typed code when there is no secret", async () => {
    const f = fakeFetch({ status: 200, body: { device: device("d1"), token: "t" } });
    await pairThisDevice({ secret: null, code: "  ABCD-1234 ", name: "Ana's phone" }, f.fn);
    expect(JSON.parse(f.calls[0].init!.body as string)).toEqual({ code: "ABCD-1234", device_name: "Ana's phone" });
  });

  it("explains a wrong/expired code (401 pairing_invalid) and the lockout (429 pairing_locked)", async () => {
    const invalid = fakeFetch({ status: 401, body: err("pairing_invalid", "bad") });
    await expect(pairThisDevice({ secret: null, code: "x", name: "n" }, invalid.fn)).rejects.toThrow(/wrong or has expired/);
    const qr = fakeFetch({ status: 401, body: err("pairing_invalid") });
    await expect(pairThisDevice({ secret: "s", code: "", name: "n" }, qr.fn)).rejects.toThrow(/no longer valid/);
    const locked = fakeFetch({ status: 429, body: err("pairing_locked", "slow down") });
    await expect(pairThisDevice({ secret: null, code: "x", name: "n" }, locked.fn)).rejects.toThrow(
      "Too many attempts. Try again in a few minutes.",
    );
    const down = fakeFetch(); // network failure
    await expect(pairThisDevice({ secret: null, code: "x", name: "n" }, down.fn)).rejects.toThrow(/Could not reach the hub/);
  });

  it("a 401 from /pair is a pairing error, never a sign-out", async () => {
    const f = fakeFetch({ status: 401, body: err("pairing_invalid") });
    const e = await pairDevice({ code: "x", device_name: "n" }, f.fn).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect((e as ApiError).code).toBe("pairing_invalid");
  });

  it("rejects an answer without a token", async () => {
    const f = fakeFetch({ status: 200, body: { device: device("d1") } });
    await expect(pairDevice({ code: "x", device_name: "n" }, f.fn)).rejects.toThrow(/not understood/);
  });

  it("does not call the hub without a name or a code", async () => {
    expect(pairBody({ secret: null, code: "abc", name: "  " })).toEqual({ error: "Give this device a name." });
    expect(pairBody({ secret: null, code: " ", name: "n" })).toEqual({ error: "Enter the code shown on the computer." });
    const f = fakeFetch();
    await expect(pairThisDevice({ secret: null, code: "", name: "n" }, f.fn)).rejects.toThrow(/Enter the code/);
    expect(f.calls).toHaveLength(0);
  });

  it("error texts for other codes", () => {
    expect(pairErrorText(new ApiError(409, "remote_off", "off"), false)).toMatch(/turned off/);
    expect(pairErrorText(new ApiError(403, "forbidden_origin", "no"), false)).toMatch(/refused this page's address/);
  });

  it("takes the secret out of the address, and lands on the sessions list", () => {
    const loc = { pathname: "/", search: "" };
    expect(urlWithoutSecret(loc)).toBe("/#/pair");
    expect(urlAfterPairing(loc)).toBe("/#/");
  });
});

describe("defaultDeviceName", () => {
  it("names common devices", () => {
    expect(defaultDeviceName("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit")).toBe("iPhone");
    expect(defaultDeviceName("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit Chrome Mobile Safari")).toBe("Android phone");
    expect(defaultDeviceName("Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit Chrome Safari")).toBe("Android tablet");
    expect(defaultDeviceName("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)")).toBe("iPad");
    expect(defaultDeviceName("Mozilla/5.0 (Windows NT 10.0; Win64; x64)")).toBe("Windows PC");
    expect(defaultDeviceName("")).toBe("Phone");
  });
});

describe("countdown and expiry", () => {
  it("uses expires_at, capped at five minutes after arrival", () => {
    const now = Date.parse("2026-01-01T12:00:00Z");
    expect(offerDeadline("2026-01-01T12:04:00Z", now)).toBe(now + 4 * 60_000);
    expect(offerDeadline("2026-01-01T13:00:00Z", now)).toBe(now + OFFER_LIFETIME_MS);
    expect(offerDeadline("garbage", now)).toBe(now + OFFER_LIFETIME_MS);
  });

  it("formats m:ss, rounding up, never below zero", () => {
    expect(formatCountdown(300_000)).toBe("5:00");
    expect(formatCountdown(245_000)).toBe("4:05");
    expect(formatCountdown(59_001)).toBe("1:00");
    expect(formatCountdown(1)).toBe("0:01");
    expect(formatCountdown(0)).toBe("0:00");
    expect(formatCountdown(-5)).toBe("0:00");
    expect(msLeft(1000, 1500)).toBe(0);
    expect(msLeft(2000, 1500)).toBe(500);
  });
});

describe("QR code", () => {
  it("becomes a base64 data: URL for an <img> (no markup in the page)", () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><title>Ünïcode ✓</title><script>alert(1)</script></svg>';
    const url = svgDataUrl(svg);
    expect(url.startsWith("data:image/svg+xml;base64,")).toBe(true);
    expect(url).not.toContain("<");
    const decoded = new TextDecoder().decode(Uint8Array.from(atob(url.split(",")[1]), (c) => c.charCodeAt(0)));
    expect(decoded).toBe(svg);
  });

  it("the typed-code address drops the secret", () => {
    expect(pairWithCodeUrl("https://h.example/#/pair/SECRET")).toBe("https://h.example/#/pair");
    expect(pairWithCodeUrl("http://192.168.1.20:7601/")).toBe("http://192.168.1.20:7601/#/pair");
  });
});

function offer(id: string, over: Partial<Pairing> = {}): Pairing {
  return {
    id,
    url: `https://h.example/#/pair/secret-${id}`,
    code: "K7P2-M9QX",
    qr_svg: "<svg/>",
    expires_at: "2026-01-01T12:05:00Z",
    transport: "tls_at_provider",
    ...over,
  };
}

/** An OfferApi whose createPairing answers are resolved by the test. */
function fakeOfferApi() {
  const pendingCreates: { resolve: (p: Pairing) => void; reject: (e: unknown) => void }[] = [];
  let devices: Device[] = [device("old")];
  const api = {
    createPairing: vi.fn(
      () =>
        new Promise<Pairing>((resolve, reject) => {
          pendingCreates.push({ resolve, reject });
        }),
    ),
    withdrawPairing: vi.fn(async (_id: string) => {}),
    devices: vi.fn(async () => devices),
  };
  return {
    api: api as unknown as OfferApi & typeof api,
    answer: (p: Pairing) => pendingCreates.shift()!.resolve(p),
    fail: (e: unknown) => pendingCreates.shift()!.reject(e),
    setDevices: (d: Device[]) => {
      devices = d;
    },
  };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe("PairingOffer (owner's dialog)", () => {
  it("shows the offer, expires it at the deadline, and makes a new one", async () => {
    let now = Date.parse("2026-01-01T12:00:00Z");
    const f = fakeOfferApi();
    const o = new PairingOffer(f.api, () => now);
    const opening = o.open();
    await flush();
    expect(o.state.status).toBe("loading");
    f.answer(offer("p1"));
    await opening;
    expect(o.state.status).toBe("ready");
    if (o.state.status !== "ready") throw new Error();
    expect(o.state.deadline).toBe(now + 5 * 60_000);

    now += 4 * 60_000;
    o.tick();
    expect(o.state.status).toBe("ready");
    now += 60_000;
    o.tick();
    expect(o.state.status).toBe("expired");

    const renewing = o.open();
    await flush();
    f.answer(offer("p2", { expires_at: "2026-01-01T12:10:00Z" }));
    await renewing;
    expect(o.state.status === "ready" && o.state.offer.id).toBe("p2");
    // The expired one is not withdrawn (the hub dropped it); closing withdraws p2.
    expect(f.api.withdrawPairing).not.toHaveBeenCalled();
    o.close();
    expect(f.api.withdrawPairing).toHaveBeenCalledWith("p2");
    expect(f.api.withdrawPairing).toHaveBeenCalledTimes(1);
  });

  it("withdraws the offer when the dialog closes", async () => {
    const f = fakeOfferApi();
    const o = new PairingOffer(f.api);
    const opening = o.open();
    await flush();
    f.answer(offer("p1"));
    await opening;
    o.close();
    expect(o.state.status).toBe("closed");
    expect(f.api.withdrawPairing).toHaveBeenCalledWith("p1");
    o.close();
    expect(f.api.withdrawPairing).toHaveBeenCalledTimes(1);
  });

  it("withdraws an offer that arrives after the dialog closed", async () => {
    const f = fakeOfferApi();
    const o = new PairingOffer(f.api);
    const opening = o.open();
    await flush();
    o.close();
    f.answer(offer("late"));
    await opening;
    expect(o.state.status).toBe("closed");
    expect(f.api.withdrawPairing).toHaveBeenCalledWith("late");
  });

  it("says when phone access is off (409 remote_off)", async () => {
    const f = fakeOfferApi();
    const o = new PairingOffer(f.api);
    const opening = o.open();
    await flush();
    f.fail(new ApiError(409, "remote_off", "remote access is off"));
    await opening;
    expect(o.state).toMatchObject({ status: "error", code: "remote_off" });
  });

  it("notices the phone pairing (a new device shows up)", async () => {
    const f = fakeOfferApi();
    const o = new PairingOffer(f.api);
    const opening = o.open();
    await flush();
    f.answer(offer("p1"));
    await opening;
    await o.checkPaired();
    expect(o.state.status).toBe("ready");
    f.setDevices([device("new", "Ana's iPhone"), device("old")]);
    await o.checkPaired();
    expect(o.state).toMatchObject({ status: "paired", device: { id: "new", name: "Ana's iPhone" } });
    expect(f.api.withdrawPairing).toHaveBeenCalledWith("p1");
  });
});

describe("HubApi phone-access endpoints", () => {
  it("use the owner token on the documented paths", async () => {
    const calls: [string, RequestInit | undefined][] = [];
    vi.stubGlobal("fetch", async (path: string, init?: RequestInit) => {
      calls.push([path, init]);
      const body = path.startsWith("/api/remote/consent") ? { notice: "N" } : path === "/api/devices" ? { devices: [] } : {};
      return new Response(JSON.stringify(body), { status: 200 });
    });
    const api = new HubApi("owner", () => {});
    await api.consentNotice("lan");
    await api.createPairing();
    await api.withdrawPairing("p/1");
    await api.devices();
    await api.revokeDevice("d1");
    await api.revokeAllDevices();
    await api.setRemoteAccess({ provider: null });
    expect(calls.map(([p, i]) => `${i?.method} ${p}`)).toEqual([
      "GET /api/remote/consent?kind=lan",
      "POST /api/pairing",
      "DELETE /api/pairing/p%2F1",
      "GET /api/devices",
      "DELETE /api/devices/d1",
      "POST /api/devices/revoke-all",
      "PUT /api/remote",
    ]);
    expect(calls.every(([, i]) => (i?.headers as Record<string, string>).Authorization === "Bearer owner")).toBe(true);
  });

  it("a device token's 401 calls onUnauthorized (the app then offers pairing again)", async () => {
    vi.stubGlobal("fetch", async () => new Response(JSON.stringify(err("unauthorized")), { status: 401 }));
    const onUnauthorized = vi.fn();
    await expect(new HubApi("device-token", onUnauthorized).sessions()).rejects.toThrow();
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
  });
});
