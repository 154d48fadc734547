import { describe, expect, it } from "vitest";
import { fragmentWithoutToken, tokenFromFragment } from "./auth";
import { shortenCwd } from "./sessionFormat";

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
