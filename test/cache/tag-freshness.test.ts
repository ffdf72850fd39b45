import { describe, expect, it } from "vitest";
import { parseTagRecord, tagFreshness } from "../../src/cache/tag-store.js";

const rec = { digest: "sha256:" + "a".repeat(64), mediaType: "m", size: 1, fetchedAt: 1_000 };

describe("tag freshness", () => {
  it("is fresh within tagTTL, stale within staleIfError after it, expired beyond", () => {
    expect(tagFreshness(rec, 1_000, 100, 50)).toBe("fresh");
    expect(tagFreshness(rec, 1_099, 100, 50)).toBe("fresh");
    expect(tagFreshness(rec, 1_100, 100, 50)).toBe("stale");
    expect(tagFreshness(rec, 1_149, 100, 50)).toBe("stale");
    expect(tagFreshness(rec, 1_150, 100, 50)).toBe("expired");
  });
  it("a record from the future (clock stepped back) is revalidated, not trusted", () => {
    expect(tagFreshness(rec, 500, 100, 50)).not.toBe("fresh");
  });
  it("a zero tagTTL always revalidates", () => {
    expect(tagFreshness(rec, 1_000, 0, 50)).toBe("stale");
  });
  it("a damaged record reads as absent", () => {
    expect(parseTagRecord("{not json")).toBeUndefined();
    expect(parseTagRecord('{"digest":1}')).toBeUndefined();
    expect(parseTagRecord(JSON.stringify(rec))).toEqual(rec);
  });
});
