// The Redis lock against a real redis-server of this file's own: the shared
// coordinator suite between two "replicas" (two coordinators, two owners),
// plus what only Redis shows — key names under the prefix, SET NX PX with a
// TTL, compare-and-delete against a foreign token, fences that keep growing
// across a Redis restart, and a renewing holder re-taking its lease after one.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisCoordinator } from "../../src/coordination/redis-coordinator.js";
import { startRedis, type RunningRedis } from "../helpers/redis.js";
import { waitUntil } from "../helpers/process.js";
import { describeCoordinator } from "./coordinator-suite.js";

let redis: RunningRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});

function coordinator(prefix: string, owner: string): RedisCoordinator {
  return RedisCoordinator.connect(redis.url, { prefix, owner: `${process.pid}-${owner}`, leaseMs: 5_000 });
}

async function ready(c: RedisCoordinator): Promise<void> {
  await waitUntil("redis client ready", () => c.client.status === "ready" && c.subscriber.status === "ready", { timeoutMs: 5_000 });
}

describeCoordinator("redis", async () => {
  const prefix = `suite-${randomBytes(4).toString("hex")}:`;
  const a = coordinator(prefix, "aaaaaaaaaaaa");
  const b = coordinator(prefix, "bbbbbbbbbbbb");
  await Promise.all([ready(a), ready(b)]);
  return { a, b, close: async () => void (await Promise.all([a.close(), b.close()])) };
});

describe("RedisCoordinator in Redis", () => {
  it("writes only keys under its prefix; the lock is SET NX PX: a string holding the token, with a TTL", async () => {
    const prefix = `ns-${randomBytes(4).toString("hex")}:`;
    const c = coordinator(prefix, "cccccccccccc");
    await ready(c);
    try {
      const before = await redis.client.dbsize();
      const lease = (await c.tryAcquire("blob:sha256:abc", { leaseMs: 4_000 })).lease!;
      await lease.setData("x");
      expect((await redis.client.keys(`${prefix}*`)).sort()).toEqual([`${prefix}fence`, `${prefix}lease-data:blob:sha256:abc`, `${prefix}lease:blob:sha256:abc`]);
      // Nothing outside the prefix was written.
      expect(await redis.client.dbsize()).toBe(before + 3);
      const value = await redis.client.get(`${prefix}lease:blob:sha256:abc`);
      expect(value).toMatch(new RegExp(`^${lease.fence}:${c.owner}:[0-9a-f]+$`));
      const ttl = await redis.client.pttl(`${prefix}lease:blob:sha256:abc`);
      expect(ttl).toBeGreaterThan(3_000);
      expect(ttl).toBeLessThanOrEqual(4_000);
      await lease.release();
      expect(await redis.client.exists(`${prefix}lease:blob:sha256:abc`, `${prefix}lease-data:blob:sha256:abc`)).toBe(0);
    } finally {
      await c.close();
    }
  });

  it("release deletes only its own token (compare-and-delete): a lock that lapsed and was re-taken survives the slow holder", async () => {
    const prefix = `cad-${randomBytes(4).toString("hex")}:`;
    const c = coordinator(prefix, "dddddddddddd");
    await ready(c);
    try {
      const slow = (await c.tryAcquire("k", { leaseMs: 5_000, renew: false })).lease!;
      // Its lease lapsed meanwhile and another holder's SET NX took the key:
      await redis.client.set(`${prefix}lease:k`, "999:other:ff", "PX", 5_000);
      expect(await slow.release()).toBe(false);
      expect(await redis.client.get(`${prefix}lease:k`)).toBe("999:other:ff");
    } finally {
      await c.close();
    }
  });

  it("keeps fences growing across a Redis restart that lost every key, and a renewing holder re-takes its lease after it", async () => {
    const prefix = `restart-${randomBytes(4).toString("hex")}:`;
    const c = coordinator(prefix, "eeeeeeeeeeee");
    await ready(c);
    try {
      const before = (await c.tryAcquire("once", { leaseMs: 5_000 })).lease!;
      await before.release();
      const held = (await c.tryAcquire("held", { leaseMs: 600 })).lease!;
      await held.setData("info");
      await redis.stop();
      await redis.start();
      expect(await redis.client.exists(`${prefix}lease:held`)).toBe(0);
      await ready(c);
      const renewals = held.renewals;
      // The next renewal finds the key gone and nobody else holding it: it is ours again, data too.
      await waitUntil("lease re-taken", async () => held.renewals > renewals && (await redis.client.get(`${prefix}lease:held`)) !== null, { timeoutMs: 10_000 });
      expect(held.lost.aborted).toBe(false);
      expect((await c.holder("held"))).toMatchObject({ fence: held.fence, data: "info" });
      const after = (await c.tryAcquire("once", { leaseMs: 5_000 })).lease!;
      expect(after.fence).toBeGreaterThan(before.fence);
      await after.release();
      await held.release();
    } finally {
      await c.close();
    }
  });
});
