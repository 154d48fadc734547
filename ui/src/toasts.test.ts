import { describe, expect, it } from "vitest";
import { approval, session } from "./testFixtures";
import { dismissToast, initialToasts, MAX_TOASTS, nextToasts, toastView, type ToastState } from "./toasts";

const ready = { ready: true, openSessionId: null };

describe("approval toasts", () => {
  it("nothing toasts before the first snapshot, and what was pending then does not toast", () => {
    let s = nextToasts(initialToasts, [approval("a1")], { ready: false, openSessionId: null });
    expect(s).toBe(initialToasts);
    s = nextToasts(s, [approval("a1")], ready);
    expect(s.primed).toBe(true);
    expect(s.visible).toEqual([]);
  });

  it("a new pending approval toasts once; it goes when decided elsewhere", () => {
    let s = nextToasts(initialToasts, [], ready);
    s = nextToasts(s, [approval("a1")], ready);
    expect(s.visible).toEqual(["a1"]);
    const same = nextToasts(s, [approval("a1")], ready);
    expect(same).toBe(s); // no change, same object (no re-render)
    s = nextToasts(s, [], ready); // decided or cancelled
    expect(s.visible).toEqual([]);
    s = nextToasts(s, [approval("a1")], ready); // a stale replay does not toast again
    expect(s.visible).toEqual([]);
  });

  it("does not toast the session on screen, and hides a toast when its session is opened", () => {
    let s = nextToasts(initialToasts, [], { ready: true, openSessionId: "s1" });
    s = nextToasts(s, [approval("a1", { session_id: "s1" })], { ready: true, openSessionId: "s1" });
    expect(s.visible).toEqual([]);
    s = nextToasts(s, [approval("a1", { session_id: "s1" }), approval("a2", { session_id: "s2" })], {
      ready: true,
      openSessionId: "s1",
    });
    expect(s.visible).toEqual(["a2"]);
    s = nextToasts(s, [approval("a1", { session_id: "s1" }), approval("a2", { session_id: "s2" })], {
      ready: true,
      openSessionId: "s2",
    });
    expect(s.visible).toEqual([]);
  });

  it("keeps the newest few, and can be dismissed", () => {
    let s: ToastState = nextToasts(initialToasts, [], ready);
    const many = Array.from({ length: MAX_TOASTS + 2 }, (_, i) => approval(`a${i}`, { created_at: `2026-01-01T00:00:0${i}Z` }));
    s = nextToasts(s, many, ready);
    expect(s.visible).toEqual(many.slice(-MAX_TOASTS).map((a) => a.id));
    s = dismissToast(s, s.visible[0]);
    expect(s.visible).toHaveLength(MAX_TOASTS - 1);
    expect(dismissToast(s, "unknown")).toBe(s);
  });

  it("shows the session, the tool and the command", () => {
    const v = toastView(approval("a1", { tool: "Bash", input: { command: "rm -rf build\n  && make" } }), session("s1", { cwd: "/home/ann/src/demo" }));
    expect(v).toEqual({ id: "a1", title: "demo", tool: "Bash", detail: "rm -rf build && make", href: "#/session/s1" });
    const m = toastView(approval("a2", { session_id: null, machine_id: "m1", tool: "create_directory", input: { cwd: "/x" } }), undefined);
    expect(m.href).toBe("#/");
    expect(m.title).toBe("New session");
    const long = toastView(approval("a3", { input: { command: "x".repeat(500) } }), undefined);
    expect(long.detail.length).toBeLessThanOrEqual(140);
  });
});
