// /healthz and /readyz: readiness follows the data dir and shutdown, never Redis
// or the upstreams, whose states (from the status providers) are only reported.
import { mkdir, rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTug, type TestTug } from "../helpers/tug.js";
import { StatusProviders } from "../../src/observability/readiness.js";
import { freePort } from "../helpers/ports.js";

let tug: TestTug;

beforeAll(async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  tug = await startTug({ upstreams: { "docker.io": dead, "ghcr.io": dead } });
});
afterAll(async () => {
  await tug?.stop();
});

async function readyz(): Promise<{ status: number; body: any }> {
  const res = await fetch(`${tug.url}/readyz`);
  return { status: res.status, body: await res.json() };
}

describe("health endpoints", () => {
  it("/healthz answers 200 while the process runs", async () => {
    const res = await fetch(`${tug.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("/readyz is 200 with every upstream unreachable, and reports config, data dir, Redis, upstreams and cache", async () => {
    // An upstream that refuses connections must not make tug unready: the cache serves from disk.
    const miss = await fetch(`${tug.url}/v2/library/alpine/manifests/3.20`);
    expect(miss.status).toBeGreaterThanOrEqual(500);
    const r = await readyz();
    expect(r.status).toBe(200);
    expect(r.body.status).toBe("ready");
    expect(r.body.checks).toEqual({ config: { ok: true, upstreams: 2 }, dataDir: { ok: true, path: tug.dataDir } });
    expect(r.body.components.redis).toEqual({ state: "disabled", detail: expect.stringContaining("no redis.url") });
    expect(Object.keys(r.body.components.upstreams.hosts)).toEqual(["docker.io", "ghcr.io"]);
    expect(r.body.components.upstreams.hosts["docker.io"]).toMatchObject({ url: tug.config.upstreams["docker.io"]!.url });
    expect(r.body.components.upstreams.hosts["docker.io"].errors).toBeGreaterThanOrEqual(1);
    expect(r.body.components.cache).toMatchObject({ state: "ok", diskBudgetBytes: tug.config.cache.maxSize, fillsInFlight: 0 });
  });

  it("a provider registered on runtime.status shows in the body and replaces the built-in one; a failing one is 'unknown', never a 503", async () => {
    const off = tug.runtime.status.register("redis", () => ({ state: "down", since: "2026-01-01T00:00:00Z" }));
    const offBroken = tug.runtime.status.register("breaker", () => {
      throw new Error("boom");
    });
    try {
      const r = await readyz();
      expect(r.status).toBe(200);
      expect(r.body.components.redis).toEqual({ state: "down", since: "2026-01-01T00:00:00Z" });
      expect(r.body.components.breaker).toEqual({ state: "unknown", error: "boom" });
    } finally {
      off();
      offBroken();
    }
    expect((await readyz()).body.components.breaker).toBeUndefined();
  });

  it("a provider that does not answer in time is reported as unknown", async () => {
    const providers = new StatusProviders();
    providers.register("slow", () => new Promise(() => undefined));
    providers.register("fast", () => ({ state: "up" }));
    providers.registerDefault("fast", () => ({ state: "overridden?" }));
    expect(await providers.collect(20)).toEqual({ fast: { state: "up" }, slow: { state: "unknown", error: "no answer within 20 ms" } });
  });

  it("/readyz is 503 while the data dir cannot be written, and 200 again once it can", async () => {
    await rm(tug.dataDir, { recursive: true, force: true });
    const down = await readyz();
    expect(down.status).toBe(503);
    expect(down.body.status).toBe("not ready");
    expect(down.body.checks.dataDir).toEqual({ ok: false, path: tug.dataDir, error: "ENOENT" });
    expect((await fetch(`${tug.url}/healthz`)).status).toBe(200);
    await mkdir(tug.runtime.layout.tmpDir, { recursive: true });
    expect((await readyz()).status).toBe(200);
  });

  it("/readyz is 503 once shutdown has begun (SIGTERM marks the readiness draining)", async () => {
    tug.runtime.readiness.markDraining();
    const r = await readyz();
    expect(r.status).toBe(503);
    expect(r.body.checks.shutdown).toEqual({ ok: false, error: "shutting down" });
  });
});
