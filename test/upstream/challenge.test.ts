import { describe, expect, it } from "vitest";
import { parseChallenges, pickChallenge } from "../../src/upstream/challenge.js";

describe("WWW-Authenticate parsing", () => {
  it("parses Docker Hub's bearer challenge", () => {
    const c = pickChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"');
    expect(c).toEqual({
      scheme: "bearer",
      params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/alpine:pull" },
    });
  });
  it("parses basic, unquoted values, spacing and escapes", () => {
    expect(pickChallenge('Basic realm="Registry Realm"')).toEqual({ scheme: "basic", params: { realm: "Registry Realm" } });
    expect(pickChallenge("bearer realm=https://x/token , service=svc")?.params).toEqual({ realm: "https://x/token", service: "svc" });
    expect(pickChallenge('Bearer realm="a\\"b"')?.params["realm"]).toBe('a"b');
  });
  it("prefers Bearer when several challenges are offered, drops unknown schemes", () => {
    const all = parseChallenges(['Negotiate abc', 'Basic realm="r", Bearer realm="https://t/x",service="s"']);
    expect(all.map((c) => c.scheme)).toEqual(["basic", "bearer"]);
    expect(pickChallenge(['Basic realm="r", Bearer realm="https://t/x"'])?.scheme).toBe("bearer");
  });
  it("returns nothing for absent or unknown challenges", () => {
    expect(pickChallenge(undefined)).toBeUndefined();
    expect(pickChallenge("Digest realm=x")).toBeUndefined();
  });
});
