import { describe, expect, it } from "vitest";
import { Backoff, EventCursor, parseHubEvent } from "./events";

describe("EventCursor", () => {
  it("starts without a resume point", () => {
    const c = new EventCursor();
    expect(c.lastSeq).toBeNull();
    expect(c.resumeQuery()).toBe("&after=latest");
  });

  it("accepts increasing seqs and drops replays", () => {
    const c = new EventCursor();
    expect(c.accept(5)).toBe(true);
    expect(c.accept(6)).toBe(true);
    expect(c.accept(6)).toBe(false);
    expect(c.accept(3)).toBe(false);
    expect(c.accept(9)).toBe(true);
    expect(c.lastSeq).toBe(9);
    expect(c.resumeQuery()).toBe("&after=9");
  });

  it("resumes after the last processed event across reconnects", () => {
    const c = new EventCursor();
    [1, 2, 3].forEach((s) => c.accept(s));
    // The server replays from after=3, but a proxy might repeat 3.
    const replay = [3, 4, 5];
    expect(replay.filter((s) => c.accept(s))).toEqual([4, 5]);
    expect(c.resumeQuery()).toBe("&after=5");
  });

  it("ignores non-numeric seqs", () => {
    const c = new EventCursor();
    expect(c.accept(Number.NaN)).toBe(false);
    expect(c.lastSeq).toBeNull();
  });
});

describe("Backoff", () => {
  it("doubles from 0.5 s up to 10 s and resets", () => {
    const b = new Backoff();
    const delays = Array.from({ length: 8 }, () => b.next());
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
    b.reset();
    expect(b.next()).toBe(500);
  });
});

describe("parseHubEvent", () => {
  it("parses a hub event", () => {
    const e = parseHubEvent(JSON.stringify({ seq: 7, type: "approval", approval: { id: "a" } }));
    expect(e?.seq).toBe(7);
    expect(e?.type).toBe("approval");
  });

  it("rejects garbage", () => {
    expect(parseHubEvent("not json")).toBeNull();
    expect(parseHubEvent(JSON.stringify({ type: "session" }))).toBeNull();
    expect(parseHubEvent(JSON.stringify({ seq: 1, type: "other" }))).toBeNull();
  });
});
