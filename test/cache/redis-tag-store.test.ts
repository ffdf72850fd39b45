// Tag records through Redis: what one replica confirmed is fresh on all (its
// neighbour's in-memory LRU does not win), an older confirmation never moves
// a record back, and with Redis away records live on disk without an error.
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Layout } from "../../src/cache/layout.js";
import { RedisTagStore } from "../../src/cache/redis-tag-store.js";
import { DiskTagStore, type TagRecord } from "../../src/cache/tag-store.js";
import { RedisCoordinator } from "../../src/coordination/redis-coordinator.js";
import { RedisHealth } from "../../src/coordination/redis-health.js";
import { silentLogger } from "../../src/observability/logger.js";
import { makeTempDir, removeTempDir, waitUntil } from "../helpers/process.js";
import { startRedis, type RunningRedis } from "../helpers/redis.js";

let redis: RunningRedis;
let dir: string;
const replicas: Array<{ coordinator: RedisCoordinator; health: RedisHealth; store: RedisTagStore }> = [];
const key = { upstream: "docker.io", repository: "library/alpine", tag: "3.20" };
const rec = (digest: string, fetchedAt: number): TagRecord => ({ digest, mediaType: "application/vnd.oci.image.index.v1+json", size: 100, fetchedAt });

beforeAll(async () => {
  redis = await startRedis();
  dir = makeTempDir("tags");
  await mkdir(new Layout(dir).tmpDir, { recursive: true });
  const prefix = `tags-${randomBytes(4).toString("hex")}:`;
  for (let i = 0; i < 2; i++) {
    const coordinator = RedisCoordinator.connect(redis.url, { prefix });
    const health = new RedisHealth(coordinator.client, { logger: silentLogger() });
    // Each replica its own DiskTagStore (own LRU) over the shared directory.
    replicas.push({ coordinator, health, store: new RedisTagStore({ disk: new DiskTagStore(new Layout(dir)), client: coordinator.client, health, prefix, ttlMs: 60_000 }) });
  }
  await waitUntil("both up", () => replicas.every((r) => r.health.up));
});
afterAll(async () => {
  for (const r of replicas) {
    r.health.close();
    await r.coordinator.close();
  }
  await redis?.close();
  await removeTempDir(dir);
});

describe("RedisTagStore", () => {
  it("a record confirmed on one replica is what the other reads, over its own cached copy", async () => {
    const [a, b] = replicas;
    await a!.store.put(key, rec("sha256:old", 1_000));
    expect((await b!.store.get(key))?.fetchedAt).toBe(1_000); // now in b's LRU too
    await a!.store.put(key, rec("sha256:old", 5_000));
    expect(await b!.store.get(key)).toEqual(rec("sha256:old", 5_000));
  });

  it("an older confirmation does not move the shared record back", async () => {
    const [a, b] = replicas;
    await a!.store.put(key, rec("sha256:new", 9_000));
    await b!.store.put(key, rec("sha256:old", 8_000));
    expect(await a!.store.get(key)).toEqual(rec("sha256:new", 9_000));
  });

  it("with Redis stopped, records are written and read on disk, and nothing throws", async () => {
    const [a] = replicas;
    await redis.stop();
    try {
      await a!.store.put(key, rec("sha256:outage", 20_000));
      expect(a!.health.up).toBe(false);
      expect(await a!.store.get(key)).toEqual(rec("sha256:outage", 20_000));
    } finally {
      await redis.start();
    }
  });
});
