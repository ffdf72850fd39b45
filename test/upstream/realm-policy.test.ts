import { describe, expect, it } from "vitest";
import { forbiddenRedirectHost, realmAllowed, registrableDomain } from "../../src/upstream/realm-policy.js";

const u = (s: string): URL => new URL(s);

describe("where credentials may go", () => {
  it("same host and same registrable domain are allowed", () => {
    expect(realmAllowed(u("https://auth.docker.io/token"), u("https://registry-1.docker.io"), [])).toBe(true);
    expect(realmAllowed(u("https://ghcr.io/token"), u("https://ghcr.io"), [])).toBe(true);
    expect(realmAllowed(u("http://127.0.0.1:9999/token"), u("http://127.0.0.1:5000"), [])).toBe(true);
  });
  it("another domain is refused unless listed in authRealms", () => {
    expect(realmAllowed(u("https://evil.example/token"), u("https://registry.example.com"), [])).toBe(false);
    expect(realmAllowed(u("https://login.other.net/token"), u("https://registry.example.com"), ["login.other.net"])).toBe(true);
    expect(realmAllowed(u("https://login.other.net/token"), u("https://registry.example.com"), ["https://login.other.net/"])).toBe(true);
    expect(realmAllowed(u("http://127.0.0.2/token"), u("http://127.0.0.1:5000"), [])).toBe(false);
  });
  it("does not treat a shared public suffix as one domain", () => {
    expect(registrableDomain("a.b.co.uk")).toBe("b.co.uk");
    expect(realmAllowed(u("https://x.co.uk/t"), u("https://y.co.uk"), [])).toBe(false);
  });
  it("link-local and metadata addresses are never redirect targets", () => {
    expect(forbiddenRedirectHost("169.254.169.254")).toBe(true);
    expect(forbiddenRedirectHost("[fe80::1]")).toBe(true);
    expect(forbiddenRedirectHost("metadata.google.internal")).toBe(true);
    expect(forbiddenRedirectHost("0.0.0.0")).toBe(true);
    expect(forbiddenRedirectHost("127.0.0.1")).toBe(false);
    expect(forbiddenRedirectHost("production.cloudflare.docker.com")).toBe(false);
  });
});
