import { describe, expect, it } from "vitest";
import { TokenCache, tokenExpiry } from "../../src/upstream/token-cache.js";

describe("token cache", () => {
  it("fetches once for concurrent callers and reuses until shortly before expiry", async () => {
    let now = 1_000_000;
    const cache = new TokenCache({ now: () => now });
    let fetches = 0;
    const fetch = async () => {
      fetches++;
      return { token: `t${fetches}`, expiresIn: 300, issuedAt: now };
    };
    const all = await Promise.all(Array.from({ length: 10 }, () => cache.obtain("k", fetch)));
    expect(new Set(all)).toEqual(new Set(["t1"]));
    expect(fetches).toBe(1);
    now += 269_000; // 300 s minus the 30 s margin, less a second
    expect(await cache.obtain("k", fetch)).toBe("t1");
    now += 2_000;
    expect(await cache.obtain("k", fetch)).toBe("t2");
    expect(fetches).toBe(2);
  });
  it("keeps tokens apart by key and drops invalidated ones", async () => {
    const cache = new TokenCache({ now: () => 0 });
    let n = 0;
    const fetch = async () => ({ token: `t${++n}`, expiresIn: 60, issuedAt: 0 });
    expect(await cache.obtain("a", fetch)).toBe("t1");
    expect(await cache.obtain("b", fetch)).toBe("t2");
    cache.invalidate("a");
    expect(await cache.obtain("a", fetch)).toBe("t3");
  });
  it("a short-lived token is kept for nine tenths of its life", () => {
    expect(tokenExpiry({ token: "x", expiresIn: 60, issuedAt: 0 })).toBe(54_000);
  });
  it("a failed fetch is not cached", async () => {
    const cache = new TokenCache({ now: () => 0 });
    await expect(cache.obtain("k", async () => Promise.reject(new Error("down")))).rejects.toThrow("down");
    expect(await cache.obtain("k", async () => ({ token: "ok", expiresIn: 60, issuedAt: 0 }))).toBe("ok");
  });
});
