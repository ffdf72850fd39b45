// Redis unreachable, slow or restarted: the failover coordinator keeps
// answering (in-process), logs each state change once, shows it in
// tug_redis_up and in its status, and goes back to Redis by itself. It also
// passes the shared coordinator suite while Redis is up.
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCoordination, type Coordination } from "../../src/coordination/coordination.js";
import { FailoverCoordinator } from "../../src/coordination/failover-coordinator.js";
import { MemoryCoordinator } from "../../src/coordination/memory-coordinator.js";
import { RedisCoordinator } from "../../src/coordination/redis-coordinator.js";
import { RedisHealth } from "../../src/coordination/redis-health.js";
import { createLogger, silentLogger } from "../../src/observability/logger.js";
import { Metrics } from "../../src/observability/metrics.js";
import { waitUntil } from "../helpers/process.js";
import { startRedis, type RunningRedis } from "../helpers/redis.js";
import { testConfig } from "../helpers/tug.js";
import { describeCoordinator } from "./coordinator-suite.js";

let redis: RunningRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});

function failover(prefix: string, owner: string): FailoverCoordinator {
  let health: RedisHealth | undefined;
  const r = RedisCoordinator.connect(redis.url, { prefix, owner: `${process.pid}-${owner}`, leaseMs: 5_000, onError: (e) => health?.fail(e) });
  health = new RedisHealth(r.client, { logger: silentLogger() });
  return new FailoverCoordinator(r, new MemoryCoordinator({ owner: r.owner }), health);
}

describeCoordinator("redis with failover", async () => {
  const prefix = `fsuite-${randomBytes(4).toString("hex")}:`;
  const a = failover(prefix, "aaaaaaaaaaaa");
  const b = failover(prefix, "bbbbbbbbbbbb");
  await waitUntil("both up", () => a.health.up && b.health.up && a.redis.subscriber.status === "ready" && b.redis.subscriber.status === "ready", { timeoutMs: 5_000 });
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
});

function capture(): { logger: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createLogger("info", { destination: sink }), lines: () => lines };
}

async function redisUpGauge(metrics: Metrics): Promise<number | undefined> {
  return (await metrics.redisUp.get()).values[0]?.value;
}

describe("a Redis outage", () => {
  let coordination: Coordination;
  let log: ReturnType<typeof capture>;
  let metrics: Metrics;

  beforeAll(async () => {
    log = capture();
    metrics = new Metrics();
    const config = testConfig({ upstreams: { "docker.io": "http://127.0.0.1:9" }, dataDir: "/tmp/unused", extra: { redis: { url: redis.url, prefix: `out-${randomBytes(4).toString("hex")}:`, lease: "2s" } } });
    coordination = await createCoordination(config, { logger: log.logger, metrics });
  });
  afterAll(async () => {
    await coordination?.close();
  });

  const warnings = (): number => log.lines().filter((l) => String(l["msg"]).startsWith("redis unreachable")).length;
  const recoveries = (): number => log.lines().filter((l) => String(l["msg"]).startsWith("redis answers again")).length;

  it("starts up coordinating through Redis, says so once, and shows it", async () => {
    const c = coordination.coordinator;
    expect(c.shared).toBe(true);
    expect(coordination.status()).toMatchObject({ state: "up", coordination: "redis" });
    expect(await redisUpGauge(metrics)).toBe(1);
    expect(log.lines().filter((l) => l["msg"] === "redis connected: coordinating upstream fetches across replicas")).toHaveLength(1);
  });

  it("with Redis stopped: every call still answers (in-process), one warning for the whole outage, gauge 0, status degraded", async () => {
    const c = coordination.coordinator;
    await redis.stop();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => c.tryAcquire(`k${i}`)));
    expect(results.every((r) => r.lease !== undefined)).toBe(true);
    expect(c.shared).toBe(false);
    expect(c.kind).toBe("memory");
    // In-process coordination still holds within this process:
    expect((await c.tryAcquire("k0")).holder?.fence).toBe(results[0]!.lease!.fence);
    await Promise.all(Array.from({ length: 50 }, () => c.holder("k1")));
    await c.publish("t", "m");
    for (const r of results) await r.lease!.release();
    expect(warnings()).toBe(1);
    expect(await redisUpGauge(metrics)).toBe(0);
    expect(coordination.status()).toMatchObject({ state: "degraded", coordination: "memory" });
  });

  it("with Redis started again: reconnects by itself, says so once, and coordinates through Redis again", async () => {
    await redis.start();
    await waitUntil("coordination back on redis", () => coordination.coordinator.shared, { timeoutMs: 15_000 });
    expect(recoveries()).toBe(1);
    expect(warnings()).toBe(1);
    expect(await redisUpGauge(metrics)).toBe(1);
    const lease = (await coordination.coordinator.tryAcquire("after")).lease!;
    expect(await redis.client.keys(`*lease:after`)).toHaveLength(1);
    await lease.release();
  });

  it("with Redis frozen (slow): a call gives up within the command timeout and the coordinator degrades; it recovers when Redis answers", async () => {
    const c = coordination.coordinator;
    redis.pause();
    try {
      const started = Date.now();
      const r = await c.tryAcquire("slow");
      expect(Date.now() - started).toBeLessThan(3_000);
      expect(r.lease).toBeDefined();
      expect(c.shared).toBe(false);
      expect(warnings()).toBe(2);
      await r.lease!.release();
    } finally {
      redis.resume();
    }
    await waitUntil("coordination back on redis", () => c.shared, { timeoutMs: 15_000 });
    expect(recoveries()).toBe(2);
  });
});
