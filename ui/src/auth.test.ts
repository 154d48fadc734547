import { afterEach, describe, expect, it, vi } from "vitest";
import {
  adoptTokenFromLocation,
  clearDeviceToken,
  clearToken,
  forgetRejectedCredential,
  initialCredential,
  isOwner,
  loadDeviceToken,
  loadEventTransport,
  storeDeviceToken,
  storeEventTransport,
  fragmentWithoutToken,
  initialToken,
  loadEventCursor,
  loadToken,
  storeEventCursor,
  storeToken,
  tokenFromFragment,
} from "./auth";
import { shortenCwd } from "./sessionFormat";
import { FakeWindow } from "./testFixtures";

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("tokenFromFragment", () => {
  it("reads #token=", () => {
    expect(tokenFromFragment("#token=abc123")).toBe("abc123");
    expect(tokenFromFragment("#/session/x?token=t%2B1")).toBe("t+1");
    expect(tokenFromFragment("#/session/x")).toBeNull();
    expect(tokenFromFragment("")).toBeNull();
  });
});

describe("fragmentWithoutToken", () => {
  it("drops only the token", () => {
    expect(fragmentWithoutToken("#token=abc")).toBe("");
    expect(fragmentWithoutToken("#/session/s1?token=abc")).toBe("#/session/s1");
    expect(fragmentWithoutToken("#/session/s1?token=abc&x=1")).toBe("#/session/s1?x=1");
  });
});

describe("shortenCwd", () => {
  it("abbreviates home and long paths", () => {
    expect(shortenCwd("/home/ann/demo")).toBe("~/demo");
    expect(shortenCwd("/home/ann/src/work/app")).toBe("…/work/app");
    expect(shortenCwd("/srv/x")).toBe("/srv/x");
  });
});

describe("token sources", () => {
  it("browser: adopts #token= into localStorage and starts from it", () => {
    const w = new FakeWindow({ hash: "#/session/s1?token=abc" });
    vi.stubGlobal("window", w);
    expect(initialToken()).toBeNull();
    expect(adoptTokenFromLocation()).toBe("abc");
    expect(w.location.hash).toBe("#/session/s1");
    expect(w.store.get("hapi.token")).toBe("abc");
    expect(initialToken()).toBe("abc");
    storeEventCursor(7);
    expect(loadEventCursor()).toBe(7);
    storeToken("other"); // a new token starts the cursor over
    expect(loadEventCursor()).toBeNull();
    clearToken();
    expect(loadToken()).toBeNull();
  });

  it("desktop app: uses the injected token and persists nothing", () => {
    const w = new FakeWindow({ desktop: { token: "desk" } });
    vi.stubGlobal("window", w);
    expect(initialToken()).toBe("desk");
    storeToken("desk");
    storeEventCursor(12);
    expect(loadEventCursor()).toBeNull();
    expect(w.store.size).toBe(0);
  });

  it("desktop app: its token wins over a stored one", () => {
    const w = new FakeWindow({ desktop: { token: "desk" } });
    w.store.set("hapi.token", "old-browser-token");
    vi.stubGlobal("window", w);
    expect(initialToken()).toBe("desk");
  });

  it("desktop app: a #token= is stripped from the URL but not adopted", () => {
    const w = new FakeWindow({ hash: "#token=pasted", desktop: { token: "desk" } });
    vi.stubGlobal("window", w);
    expect(adoptTokenFromLocation()).toBeNull();
    expect(w.location.hash).toBe("");
    expect(w.store.size).toBe(0);
    expect(initialToken()).toBe("desk");
  });

  it("desktop global without a token falls back to the browser flow", () => {
    const w = new FakeWindow({ desktop: {} });
    w.store.set("hapi.token", "stored");
    vi.stubGlobal("window", w);
    expect(initialToken()).toBe("stored");
  });
});

describe("device token (a paired phone)", () => {
  it("is kept under its own key and used when there is no owner token", () => {
    const w = new FakeWindow();
    vi.stubGlobal("window", w);
    expect(initialCredential()).toBeNull();
    storeDeviceToken("dev-1");
    expect(w.store.get("hapi.deviceToken")).toBe("dev-1");
    expect(w.store.has("hapi.token")).toBe(false);
    expect(initialCredential()).toEqual({ kind: "device", token: "dev-1" });
    expect(initialToken()).toBe("dev-1");
    expect(isOwner(initialCredential())).toBe(false);
  });

  it("pairing replaces an owner token, and signing in as owner replaces the device token", () => {
    const w = new FakeWindow();
    vi.stubGlobal("window", w);
    storeToken("owner");
    storeEventCursor(5);
    storeDeviceToken("dev");
    expect(w.store.has("hapi.token")).toBe(false);
    expect(loadEventCursor()).toBeNull(); // a new credential starts the cursor over
    expect(initialCredential()).toEqual({ kind: "device", token: "dev" });
    storeToken("owner2");
    expect(loadDeviceToken()).toBeNull();
    expect(initialCredential()).toEqual({ kind: "owner", token: "owner2" });
    expect(isOwner(initialCredential())).toBe(true);
  });

  it("a 401 with a device token forgets it and asks to pair again (not the sign-in form)", () => {
    const w = new FakeWindow();
    vi.stubGlobal("window", w);
    storeDeviceToken("dev");
    storeEventCursor(9);
    expect(forgetRejectedCredential("device")).toBe("device-unpaired");
    expect(loadDeviceToken()).toBeNull();
    expect(loadEventCursor()).toBeNull();
    expect(initialCredential()).toBeNull();
  });

  it("a 401 with the owner token goes back to sign-in; the desktop app's token is never forgotten", () => {
    const w = new FakeWindow();
    vi.stubGlobal("window", w);
    storeToken("owner");
    expect(forgetRejectedCredential("owner")).toBe("sign-in");
    expect(loadToken()).toBeNull();
    const d = new FakeWindow({ desktop: { token: "desk" } });
    vi.stubGlobal("window", d);
    expect(forgetRejectedCredential("desktop")).toBe("desktop-token-rejected");
    expect(initialCredential()).toEqual({ kind: "desktop", token: "desk" });
  });

  it("is never stored inside the desktop app", () => {
    const w = new FakeWindow({ desktop: { token: "desk" } });
    vi.stubGlobal("window", w);
    storeDeviceToken("dev");
    expect(w.store.size).toBe(0);
    clearDeviceToken();
    expect(initialCredential()).toEqual({ kind: "desktop", token: "desk" });
  });
});

describe("remembered event transport", () => {
  it("keeps ws per origin, sse is the default", () => {
    const w = new FakeWindow();
    vi.stubGlobal("window", w);
    expect(loadEventTransport()).toBeNull();
    storeEventTransport("ws");
    expect(loadEventTransport()).toBe("ws");
    storeEventTransport("sse");
    expect(loadEventTransport()).toBeNull();
  });
});
