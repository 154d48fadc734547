import { describe, expect, it } from "vitest";
import { ApiError } from "./api";
import { credentialNoticeText, loadHubInfo, NoticeDismissals } from "./credentialNotice";
import type { HubInfo } from "./generated/HubInfo";

function info(notice?: string, store: HubInfo["credentials"]["store"] = "file"): HubInfo {
  return { version: "0.1.0", machine_id: "m1", credentials: notice === undefined ? { store } : { store, notice } };
}

describe("credentialNoticeText", () => {
  it("is the notice when set", () => {
    expect(credentialNoticeText(info("Keychain unavailable; token kept in ~/.hapi/token (0600)."))).toBe(
      "Keychain unavailable; token kept in ~/.hapi/token (0600).",
    );
    expect(credentialNoticeText(info(undefined, "keychain"))).toBeNull();
    expect(credentialNoticeText(info("   "))).toBeNull();
    expect(credentialNoticeText(null)).toBeNull();
  });
});

describe("NoticeDismissals", () => {
  it("hides a dismissed notice for the page load, not a different one", () => {
    const d = new NoticeDismissals();
    expect(d.visible(info("A"))).toBe("A");
    d.dismiss("A");
    expect(d.visible(info("A"))).toBeNull();
    expect(d.visible(info("B"))).toBe("B");
    expect(new NoticeDismissals().visible(info("A"))).toBe("A"); // a reload starts over
  });
});

describe("loadHubInfo", () => {
  it("returns the hub's info", async () => {
    const i = info("x");
    expect(await loadHubInfo({ hubInfo: async () => i })).toEqual({ status: "done", info: i });
  });

  it("treats an older hub's 404 as no info, quietly", async () => {
    expect(await loadHubInfo({ hubInfo: async () => null })).toEqual({ status: "done", info: null });
    const r = await loadHubInfo({
      hubInfo: async () => {
        throw new ApiError(404, "not_found", "no route GET /api/hub");
      },
    });
    expect(r).toEqual({ status: "done", info: null });
  });

  it("reports other failures so the caller can ask again later", async () => {
    const r = await loadHubInfo({
      hubInfo: async () => {
        throw new ApiError(0, "network", "Failed to fetch");
      },
    });
    expect(r.status).toBe("failed");
  });
});
