import { afterEach, describe, expect, it, vi } from "vitest";
import { HubApi } from "./api";
import { approval, FakeWindow } from "./testFixtures";

/** Stubs `fetch`, answering every request with `status` and `body`. */
function stubFetch(status: number, body: unknown) {
  const fetchMock = vi.fn(async (_path: string, _init?: RequestInit) =>
    new Response(typeof body === "string" ? body : JSON.stringify(body), { status }),
  );
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("HubApi.decide channel", () => {
  it("sends web from a browser", async () => {
    const f = stubFetch(200, { approval: approval("a1", { state: "decided" }) });
    await new HubApi("t", () => {}).decide("a1", "allow_once");
    const [path, init] = f.mock.calls[0];
    expect(path).toBe("/api/approvals/a1");
    expect(JSON.parse(init!.body as string)).toEqual({ decision: "allow_once", message: null, channel: "web" });
  });

  it("sends desktop_window inside the desktop app", async () => {
    vi.stubGlobal("window", new FakeWindow({ desktop: { token: "t" } }));
    const f = stubFetch(200, { approval: approval("a1", { state: "decided" }) });
    const api = new HubApi("t", () => {});
    expect(api.channel).toBe("desktop_window");
    await api.decide("a1", "reject_once");
    expect(JSON.parse(f.mock.calls[0][1]!.body as string).channel).toBe("desktop_window");
  });
});

describe("HubApi.hubInfo", () => {
  it("reads GET /api/hub", async () => {
    const body = { version: "1", machine_id: "m", credentials: { store: "file", notice: "n" } };
    const f = stubFetch(200, body);
    expect(await new HubApi("t", () => {}).hubInfo()).toEqual(body);
    expect(f.mock.calls[0][0]).toBe("/api/hub");
    expect((f.mock.calls[0][1]!.headers as Record<string, string>).Authorization).toBe("Bearer t");
  });

  it("is null on an older hub's 404 and on odd answers", async () => {
    stubFetch(404, { error: { code: "not_found", message: "no route GET /api/hub" } });
    expect(await new HubApi("t", () => {}).hubInfo()).toBeNull();
    stubFetch(200, "<!doctype html>");
    expect(await new HubApi("t", () => {}).hubInfo()).toBeNull();
  });

  it("still throws other errors", async () => {
    stubFetch(500, { error: { code: "internal", message: "boom" } });
    await expect(new HubApi("t", () => {}).hubInfo()).rejects.toThrow("boom");
  });
});

describe("HubApi.consentNotice", () => {
  it("returns the notice, or null when the path needs none (LAN over the hub's HTTPS)", async () => {
    const fetchMock = stubFetch(200, { notice: "Plain HTTP on 192.168.1.20." });
    expect(await new HubApi("t", () => {}).consentNotice("lan", "192.168.1.20")).toBe("Plain HTTP on 192.168.1.20.");
    expect(fetchMock.mock.calls[0][0]).toContain("/api/remote/consent?kind=lan&bind=192.168.1.20");
    stubFetch(200, { notice: null });
    expect(await new HubApi("t", () => {}).consentNotice("lan")).toBeNull();
    stubFetch(200, { notice: "" });
    await expect(new HubApi("t", () => {}).consentNotice("lan")).rejects.toThrow("no consent notice");
  });
});
