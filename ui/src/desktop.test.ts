import { afterEach, describe, expect, it, vi } from "vitest";
import {
  bridgeErrorText,
  decisionChannel,
  desktopBridge,
  desktopToken,
  DesktopBridge,
  DesktopBridgeError,
  DesktopSettingsStore,
  isDesktopApp,
  sessionNotificationsOn,
} from "./desktop";
import type { DesktopSettings } from "./generated/DesktopSettings";
import { FakeWindow } from "./testFixtures";

const base: DesktopSettings = { autostart: false, notifications: true, muted_sessions: [] };

/** A mocked `window.__TAURI__.core.invoke` answering like the app's commands. */
function mockTauri(initial: DesktopSettings = base) {
  let s: DesktopSettings = { ...initial, muted_sessions: [...initial.muted_sessions] };
  const invoke = vi.fn(async (cmd: string, args?: Record<string, unknown>): Promise<unknown> => {
    switch (cmd) {
      case "desktop_settings":
        return s;
      case "set_autostart":
        s = { ...s, autostart: args!.enabled as boolean };
        return s;
      case "set_notifications":
        s = { ...s, notifications: args!.enabled as boolean };
        return s;
      case "set_session_notifications": {
        const id = args!.sessionId as string;
        const muted = s.muted_sessions.filter((x) => x !== id);
        s = { ...s, muted_sessions: args!.enabled ? muted : [...muted, id] };
        return s;
      }
      default:
        throw `unknown command ${cmd}`;
    }
  });
  return { invoke, tauri: { core: { invoke } } };
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("desktop global", () => {
  it("is absent in a plain browser and in node", () => {
    expect(isDesktopApp()).toBe(false);
    expect(desktopToken()).toBeNull();
    vi.stubGlobal("window", new FakeWindow());
    expect(isDesktopApp()).toBe(false);
    expect(desktopToken()).toBeNull();
  });

  it("reads the injected token", () => {
    vi.stubGlobal("window", new FakeWindow({ desktop: { token: " owner-token " } }));
    expect(isDesktopApp()).toBe(true);
    expect(desktopToken()).toBe("owner-token");
  });

  it("ignores a missing, blank or non-string token but still marks the app", () => {
    for (const desktop of [{}, { token: "" }, { token: "  " }, { token: 42 }]) {
      vi.stubGlobal("window", new FakeWindow({ desktop }));
      expect(isDesktopApp()).toBe(true);
      expect(desktopToken()).toBeNull();
    }
    vi.stubGlobal("window", new FakeWindow({ desktop: null }));
    expect(isDesktopApp()).toBe(false);
  });
});

describe("decisionChannel", () => {
  it("is web in a browser and desktop_window in the app", () => {
    expect(decisionChannel()).toBe("web");
    vi.stubGlobal("window", new FakeWindow());
    expect(decisionChannel()).toBe("web");
    vi.stubGlobal("window", new FakeWindow({ desktop: { token: "t" } }));
    expect(decisionChannel()).toBe("desktop_window");
  });
});

describe("desktopBridge", () => {
  it("is null outside the app, and inside it without __TAURI__.core.invoke", () => {
    expect(desktopBridge()).toBeNull();
    vi.stubGlobal("window", new FakeWindow({ tauri: mockTauri().tauri })); // __TAURI__ alone is not the app
    expect(desktopBridge()).toBeNull();
    for (const tauri of [undefined, {}, { core: {} }, { core: { invoke: "nope" } }]) {
      vi.stubGlobal("window", new FakeWindow({ desktop: { token: "t" }, tauri }));
      expect(desktopBridge()).toBeNull();
    }
  });

  it("calls the app's commands with their argument shapes", async () => {
    const { invoke, tauri } = mockTauri();
    vi.stubGlobal("window", new FakeWindow({ desktop: { token: "t" }, tauri }));
    const bridge = desktopBridge()!;
    expect(bridge).toBeInstanceOf(DesktopBridge);

    expect(await bridge.settings()).toEqual(base);
    expect(await bridge.setAutostart(true)).toMatchObject({ autostart: true });
    expect(await bridge.setNotifications(false)).toMatchObject({ notifications: false });
    expect(await bridge.setSessionNotifications("s-1", false)).toMatchObject({ muted_sessions: ["s-1"] });
    expect(await bridge.setSessionNotifications("s-1", true)).toMatchObject({ muted_sessions: [] });

    expect(invoke.mock.calls).toEqual([
      ["desktop_settings"],
      ["set_autostart", { enabled: true }],
      ["set_notifications", { enabled: false }],
      ["set_session_notifications", { sessionId: "s-1", enabled: false }],
      ["set_session_notifications", { sessionId: "s-1", enabled: true }],
    ]);
  });

  it("turns rejections and odd answers into DesktopBridgeError", async () => {
    const failing = new DesktopBridge(async () => {
      throw "autostart: permission denied";
    });
    await expect(failing.setAutostart(true)).rejects.toThrow(DesktopBridgeError);
    await expect(failing.setAutostart(true)).rejects.toThrow("autostart: permission denied");

    const odd = new DesktopBridge(async () => ({ autostart: "yes" }));
    await expect(odd.settings()).rejects.toThrow(/Unexpected answer.*desktop_settings/);
  });
});

describe("bridgeErrorText", () => {
  it("reads strings, errors and {message}", () => {
    expect(bridgeErrorText("boom")).toBe("boom");
    expect(bridgeErrorText(new Error("bad"))).toBe("bad");
    expect(bridgeErrorText({ message: "m" })).toBe("m");
    expect(bridgeErrorText({ code: 1 })).toBe('{"code":1}');
    expect(bridgeErrorText(undefined)).toBe("The desktop app did not answer");
  });
});

describe("DesktopSettingsStore", () => {
  it("loads, changes and notifies", async () => {
    const { tauri } = mockTauri({ ...base, muted_sessions: ["s-2"] });
    vi.stubGlobal("window", new FakeWindow({ desktop: { token: "t" }, tauri }));
    const store = new DesktopSettingsStore(desktopBridge());
    const seen = vi.fn();
    store.subscribe(seen);
    expect(store.settings).toBeNull();

    await store.load();
    expect(store.settings).toEqual({ ...base, muted_sessions: ["s-2"] });
    expect(store.loadError).toBeNull();
    expect(sessionNotificationsOn(store.settings!, "s-1")).toBe(true);
    expect(sessionNotificationsOn(store.settings!, "s-2")).toBe(false);

    await store.setSessionNotifications("s-2", true);
    expect(sessionNotificationsOn(store.settings!, "s-2")).toBe(true);
    await store.setAutostart(true);
    expect(store.settings!.autostart).toBe(true);
    expect(seen).toHaveBeenCalled();
  });

  it("keeps the settings when a change fails, and reports load errors", async () => {
    let fail = false;
    const bridge = new DesktopBridge(async (cmd) => {
      if (fail) throw `cannot ${cmd}`;
      return base;
    });
    const store = new DesktopSettingsStore(bridge);
    await store.load();
    fail = true;
    await expect(store.setNotifications(false)).rejects.toThrow("cannot set_notifications");
    expect(store.settings).toEqual(base);
    await store.load();
    expect(store.loadError).toBe("cannot desktop_settings");
    expect(store.settings).toEqual(base);
  });

  it("explains a missing bridge", async () => {
    const store = new DesktopSettingsStore(null);
    await store.load();
    expect(store.loadError).toMatch(/unavailable/);
    await expect(store.setAutostart(true)).rejects.toThrow(DesktopBridgeError);
  });
});
