import { describe, expect, it } from "vitest";
import { hashForSession, parseRoute, routeFromHash, watchParsedRoute, watchRoute } from "./routing";
import { FakeWindow } from "./testFixtures";

describe("routeFromHash", () => {
  it("reads #/session/<id>", () => {
    expect(routeFromHash("#/session/abc")).toBe("abc");
    expect(routeFromHash("#/session/a%2Fb")).toBe("a/b");
    expect(routeFromHash("#/session/abc?x=1")).toBe("abc");
    expect(routeFromHash("#/session/50%")).toBe("50%");
    expect(routeFromHash("#/")).toBeNull();
    expect(routeFromHash("")).toBeNull();
    expect(routeFromHash("#/session/")).toBeNull();
  });

  it("round-trips with hashForSession", () => {
    for (const id of ["0193e9a4-7c1b-7d3e-9f00-1234567890ab", "a/b c"]) {
      expect(routeFromHash(hashForSession(id))).toBe(id);
    }
    expect(hashForSession(null)).toBe("#/");
  });
});

describe("deep link (the desktop app sets location.hash)", () => {
  it("switches from the list and from another session", () => {
    const w = new FakeWindow({ hash: "#/" });
    const routes: (string | null)[] = [];
    const stop = watchRoute(w, (r) => routes.push(r));

    w.setHash("#/session/s-1"); // from the list
    w.setHash("#/session/s-2"); // from another session
    w.setHash("#/"); // back to the list
    w.setHash("#/session/s-1");
    expect(routes).toEqual(["s-1", "s-2", null, "s-1"]);

    stop();
    w.setHash("#/session/s-3");
    expect(routes).toHaveLength(4);
  });
});

describe("parseRoute (pairing routes)", () => {
  it("tells the pairing routes apart", () => {
    expect(parseRoute("#/pair-phone")).toEqual({ kind: "pair-phone" });
    expect(parseRoute("#/pair")).toEqual({ kind: "pair", secret: null });
    expect(parseRoute("#/pair/")).toEqual({ kind: "pair", secret: null });
    expect(parseRoute("#/pair/AbC-123_x")).toEqual({ kind: "pair", secret: "AbC-123_x" });
    expect(parseRoute("#/pair/a%2Bb")).toEqual({ kind: "pair", secret: "a+b" });
    expect(parseRoute("#/pair?x=1")).toEqual({ kind: "pair", secret: null });
    expect(parseRoute("#/pairing")).toEqual({ kind: "list" });
    expect(parseRoute("#/session/s1")).toEqual({ kind: "session", id: "s1" });
    expect(parseRoute("#/")).toEqual({ kind: "list" });
    expect(parseRoute("")).toEqual({ kind: "list" });
  });

  it("the tray opens the pairing dialog with a hash change", () => {
    const w = new FakeWindow({ hash: "#/session/s1" });
    const routes: string[] = [];
    const stop = watchParsedRoute(w, (r) => routes.push(r.kind));
    w.setHash("#/pair-phone");
    w.setHash("#/");
    stop();
    expect(routes).toEqual(["pair-phone", "list"]);
  });
});
