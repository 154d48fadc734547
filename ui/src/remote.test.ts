import { describe, expect, it, vi } from "vitest";
import { ApiError } from "./api";
import type { RemoteAccess } from "./generated/RemoteAccess";
import type { SetRemoteAccess } from "./generated/SetRemoteAccess";
import {
  consentTarget,
  canTurnOn,
  defaultProviderForm,
  expectedTransport,
  needsConsent,
  POLL_MS,
  providerFromForm,
  RemoteAccessStore,
  shouldPoll,
  transportLabel,
  turnOnBody,
  type ProviderForm,
  type RemoteApi,
} from "./remote";

const access = (over: Partial<RemoteAccess> = {}): RemoteAccess => ({ state: "off", sse: true, failures: 0, ...over });

describe("transport labels", () => {
  it("say who can read the traffic", () => {
    expect(transportLabel("tls_at_this_machine", "tailscale")).toBe("Encrypted to this machine");
    expect(transportLabel("tls_at_provider", "cloudflared")).toBe("Encrypted to Cloudflare, which can read it");
    expect(transportLabel("tls_at_provider")).toBe("Encrypted to the tunnel provider, which can read it");
    expect(transportLabel("plaintext", "lan")).toBe("NOT encrypted: anyone on this network can read it");
  });

  it("each provider's path", () => {
    expect(expectedTransport("lan")).toBe("plaintext");
    expect(expectedTransport("bore")).toBe("plaintext");
    expect(expectedTransport("tailscale")).toBe("tls_at_this_machine");
    expect(expectedTransport("cloudflared")).toBe("tls_at_provider");
    expect(["lan", "bore", "tailscale", "cloudflared"].filter((k) => needsConsent(k as ProviderForm["kind"]))).toEqual([
      "lan",
      "bore",
    ]);
  });
});

describe("provider form", () => {
  it("LAN: empty address and port mean automatic", () => {
    expect(providerFromForm(defaultProviderForm)).toEqual({ provider: { kind: "lan", bind: "", port: 0 } });
    expect(providerFromForm({ ...defaultProviderForm, lanBind: " 192.168.1.20 ", lanPort: "7601" })).toEqual({
      provider: { kind: "lan", bind: "192.168.1.20", port: 7601 },
    });
    expect(providerFromForm({ ...defaultProviderForm, lanPort: "70000" })).toHaveProperty("error");
    expect(providerFromForm({ ...defaultProviderForm, lanPort: "-1" })).toHaveProperty("error");
  });

  it("bore needs a host; the secret is optional", () => {
    const bore: ProviderForm = { ...defaultProviderForm, kind: "bore" };
    expect(providerFromForm(bore)).toHaveProperty("error");
    expect(providerFromForm({ ...bore, boreHost: "bore.example.com" })).toEqual({ provider: { kind: "bore", host: "bore.example.com" } });
    expect(providerFromForm({ ...bore, boreHost: "b", boreSecret: "s" })).toEqual({ provider: { kind: "bore", host: "b", secret: "s" } });
  });
});

describe("consent gating", () => {
  const lan = defaultProviderForm;
  it("a plaintext provider needs the loaded notice and the tick", () => {
    expect(canTurnOn(lan, { notice: null, accepted: true })).toBe(false);
    expect(canTurnOn(lan, { notice: "N", accepted: false })).toBe(false);
    expect(turnOnBody(lan, { notice: "The exact notice.", accepted: true })).toEqual({
      body: { provider: { kind: "lan", bind: "", port: 0 }, plaintext_consent: "The exact notice." },
    });
  });

  it("LAN that the hub serves over HTTPS (no notice) needs no tick and sends no consent", () => {
    expect(canTurnOn(lan, { notice: null, accepted: false, encrypted: true })).toBe(true);
    expect(turnOnBody(lan, { notice: null, accepted: false, encrypted: true })).toEqual({
      body: { provider: { kind: "lan", bind: "", port: 0 } },
    });
  });

  it("an encrypted provider needs none and sends none", () => {
    const ts: ProviderForm = { ...defaultProviderForm, kind: "tailscale" };
    expect(turnOnBody(ts, { notice: null, accepted: false })).toEqual({ body: { provider: { kind: "tailscale" } } });
    expect(turnOnBody({ ...ts, kind: "cloudflared" }, { notice: "stale", accepted: true })).toEqual({
      body: { provider: { kind: "cloudflared" } },
    });
  });

  it("polls only while starting or reconnecting", () => {
    expect(["off", "starting", "up", "down", "failed"].filter((s) => shouldPoll(s as RemoteAccess["state"]))).toEqual([
      "starting",
      "down",
    ]);
  });
});

/** A fake API plus manual timers. */
function setup(over: Partial<Record<keyof RemoteApi, unknown>> = {}) {
  const puts: SetRemoteAccess[] = [];
  let remote = access();
  const api = {
    remoteAccess: vi.fn(async () => remote),
    setRemoteAccess: vi.fn(async (b: SetRemoteAccess) => {
      puts.push(b);
      remote = b.provider ? access({ state: "starting", provider: b.provider }) : access();
      return remote;
    }),
    consentNotice: vi.fn(async (kind: string) => `Notice for ${kind}`),
    devices: vi.fn(async () => []),
    revokeDevice: vi.fn(async () => {}),
    revokeAllDevices: vi.fn(async () => {}),
    ...over,
  };
  const timers: { fn: () => void; ms: number }[] = [];
  const store = new RemoteAccessStore(api as unknown as RemoteApi, {
    setTimeout: (fn, ms) => {
      timers.push({ fn, ms });
      return timers.length;
    },
    clearTimeout: () => {},
  });
  return {
    api,
    puts,
    store,
    timers,
    setRemote: (r: RemoteAccess) => {
      remote = r;
    },
  };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe("RemoteAccessStore", () => {
  it("sends nothing until the notice is accepted, then sends it verbatim", async () => {
    const t = setup();
    const notAccepted = await t.store.turnOn(defaultProviderForm, true); // notice not loaded yet
    expect(notAccepted.ok).toBe(false);
    await t.store.loadConsent("lan");
    expect(t.api.consentNotice).toHaveBeenCalledWith("lan", "");
    expect(await t.store.turnOn(defaultProviderForm, false)).toMatchObject({ ok: false });
    expect(t.api.setRemoteAccess).not.toHaveBeenCalled();
    expect(await t.store.turnOn(defaultProviderForm, true)).toEqual({ ok: true });
    expect(t.puts).toEqual([{ provider: { kind: "lan", bind: "", port: 0 }, plaintext_consent: "Notice for lan" }]);
    expect(t.store.access?.state).toBe("starting");
  });

  it("turns LAN on without consent when the hub says it needs none (its own HTTPS)", async () => {
    const t = setup({ consentNotice: vi.fn(async () => null) });
    expect((await t.store.turnOn(defaultProviderForm, false)).ok).toBe(false); // not asked yet
    await t.store.loadConsent("lan");
    expect(t.store.consent("lan")).toEqual({ status: "ready", notice: null });
    expect(await t.store.turnOn(defaultProviderForm, false)).toEqual({ ok: true });
    expect(t.puts).toEqual([{ provider: { kind: "lan", bind: "", port: 0 } }]);
  });

  it("asks for the notice of the address typed, and sends that one", async () => {
    const t = setup({ consentNotice: vi.fn(async (kind: string, target?: string) => `${kind} at ${target || "default"}`) });
    const form = { ...defaultProviderForm, lanBind: " 192.168.1.20 " };
    expect(consentTarget(form)).toBe("192.168.1.20");
    await t.store.loadConsent("lan", consentTarget(form));
    expect(t.api.consentNotice).toHaveBeenCalledWith("lan", "192.168.1.20");
    // The default address's notice does not stand in for a typed one.
    await t.store.loadConsent("lan", "");
    expect(await t.store.turnOn(form, true)).toEqual({ ok: true });
    expect(t.puts[0].plaintext_consent).toBe("lan at 192.168.1.20");
    expect(consentTarget({ ...defaultProviderForm, kind: "bore", boreHost: "bore.example" })).toBe("bore.example");
  });

  it("409 consent_required reloads the notice and asks again", async () => {
    let notice = "old notice";
    const t = setup({
      consentNotice: vi.fn(async () => notice),
      setRemoteAccess: vi.fn(async () => {
        throw new ApiError(409, "consent_required", "consent needed");
      }),
    });
    await t.store.loadConsent("lan");
    notice = "new notice";
    const r = await t.store.turnOn(defaultProviderForm, true);
    expect(r).toMatchObject({ ok: false, consentChanged: true });
    expect(t.store.consent("lan")).toEqual({ status: "ready", notice: "new notice" });
  });

  it("polls GET /api/remote while starting, and stops once up or unwatched", async () => {
    const t = setup();
    t.setRemote(access({ state: "starting", provider: { kind: "tailscale" } }));
    const unwatch = t.store.watch();
    await flush();
    expect(t.api.remoteAccess).toHaveBeenCalledTimes(1);
    expect(t.timers).toHaveLength(1);
    expect(t.timers[0].ms).toBe(POLL_MS);

    t.setRemote(access({ state: "up", provider: { kind: "tailscale" }, public_url: "https://m.ts.net", transport: "tls_at_this_machine" }));
    t.timers[0].fn();
    await flush();
    expect(t.api.remoteAccess).toHaveBeenCalledTimes(2);
    expect(t.store.access?.state).toBe("up");
    expect(t.timers).toHaveLength(1); // up: no further poll

    t.setRemote(access({ state: "down", provider: { kind: "tailscale" } }));
    await t.store.load();
    expect(t.timers).toHaveLength(2); // reconnecting: polls again
    unwatch();
    t.setRemote(access({ state: "starting" }));
    t.timers[1].fn();
    await flush();
    expect(t.timers).toHaveLength(2); // nobody watches: no more polls
  });

  it("turns off, revokes one device, revokes all", async () => {
    const t = setup({
      devices: vi.fn(async () => [{ id: "d1", name: "a", created_at: "", last_seen_at: null }]),
    });
    await t.store.loadDevices();
    expect(t.store.devices).toHaveLength(1);
    expect(await t.store.turnOff()).toEqual({ ok: true });
    expect(t.puts[t.puts.length - 1]).toEqual({ provider: null });
    expect(await t.store.revoke("d1")).toEqual({ ok: true });
    expect(t.api.revokeDevice).toHaveBeenCalledWith("d1");
    expect(await t.store.revokeAll()).toEqual({ ok: true });
    expect(t.api.revokeAllDevices).toHaveBeenCalledTimes(1);
    await flush();
    expect(t.api.remoteAccess).toHaveBeenCalled(); // re-reads the state (the hub turned it off)
  });
});
