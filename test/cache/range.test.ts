import { describe, expect, it } from "vitest";
import { parseRange } from "../../src/cache/range.js";
import { RegistryError } from "../../src/oci/errors.js";

describe("Range", () => {
  it("parses the forms clients send", () => {
    expect(parseRange("bytes=0-9", 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange("bytes=90-", 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange("bytes=-10", 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange("bytes=50-1000", 100)).toEqual({ start: 50, end: 99 });
    expect(parseRange("bytes=-1000", 100)).toEqual({ start: 0, end: 99 });
  });
  it("ignores what it does not serve", () => {
    expect(parseRange(undefined, 100)).toBeUndefined();
    expect(parseRange("bytes=0-1,5-6", 100)).toBeUndefined();
    expect(parseRange("items=0-1", 100)).toBeUndefined();
    expect(parseRange("bytes=9-1", 100)).toBeUndefined();
  });
  it("unsatisfiable ranges are 416 with Content-Range: bytes */size", () => {
    for (const h of ["bytes=100-", "bytes=200-300", "bytes=-0"]) {
      try {
        parseRange(h, 100);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(RegistryError);
        expect((e as RegistryError).status).toBe(416);
        expect((e as RegistryError).headers["Content-Range"]).toBe("bytes */100");
      }
    }
  });
});
