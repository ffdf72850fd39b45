import { describe, expect, it } from "vitest";
import { isValidName, isValidTag, parseReference } from "../../src/oci/reference.js";
import { parseDigest, tryParseDigest, digestOf } from "../../src/oci/digest.js";
import { RegistryError } from "../../src/oci/errors.js";

const HEX = "a".repeat(64);

describe("repository names", () => {
  it.each(["alpine", "library/alpine", "a/b/c", "my-org/my.app", "foo__bar", "a-----b", "x0/y1/z2", "a".repeat(255)])("accepts %s", (n) => {
    expect(isValidName(n)).toBe(true);
  });
  it.each(["", "Alpine", "-a", "a-", "a//b", "a/", "/a", "a..b", "a._b", "../etc", "a b", "a\nb", "a\0b", "a___b", "a".repeat(256), "a:b", "a@b"])(
    "rejects %j",
    (n) => {
      expect(isValidName(n)).toBe(false);
    },
  );
});

describe("tags", () => {
  it.each(["latest", "3.20", "v1.0.0-rc_1", "_x", "A".repeat(128)])("accepts %s", (t) => expect(isValidTag(t)).toBe(true));
  it.each(["", ".x", "-x", "a/b", "A".repeat(129), "a b", "a\r\n"])("rejects %j", (t) => expect(isValidTag(t)).toBe(false));
});

describe("digests", () => {
  it("parses sha256 and sha512", () => {
    expect(parseDigest(`sha256:${HEX}`)).toEqual({ algorithm: "sha256", hex: HEX, value: `sha256:${HEX}` });
    expect(parseDigest(`sha512:${"b".repeat(128)}`).algorithm).toBe("sha512");
  });
  it.each([`sha256:${"A".repeat(64)}`, `sha256:${HEX.slice(1)}`, `sha256:${HEX}0`, `md5:${HEX}`, `sha256:../${HEX}`, "sha256:", `sha256:${HEX}\n`, `sha256/${HEX}`, `sha512:${HEX}`])(
    "rejects %j as DIGEST_INVALID",
    (d) => {
      expect(tryParseDigest(d)).toBeUndefined();
      expect(() => parseDigest(d)).toThrow(RegistryError);
      try {
        parseDigest(d);
      } catch (e) {
        expect((e as RegistryError).code).toBe("DIGEST_INVALID");
        expect((e as RegistryError).status).toBe(400);
      }
    },
  );
  it("computes the sha256 of bytes", () => {
    expect(digestOf(Buffer.from("")).value).toBe("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });
});

describe("manifest references", () => {
  it("is a tag or a digest", () => {
    expect(parseReference("3.20")).toEqual({ kind: "tag", tag: "3.20" });
    expect(parseReference(`sha256:${HEX}`).kind).toBe("digest");
  });
  it("a malformed tag is MANIFEST_UNKNOWN 404, a malformed digest DIGEST_INVALID 400", () => {
    const bad = (s: string): RegistryError => {
      try {
        parseReference(s);
      } catch (e) {
        return e as RegistryError;
      }
      throw new Error("no error");
    };
    expect(bad(".bad")).toMatchObject({ code: "MANIFEST_UNKNOWN", status: 404 });
    expect(bad("sha256:xyz")).toMatchObject({ code: "DIGEST_INVALID", status: 400 });
  });
});
