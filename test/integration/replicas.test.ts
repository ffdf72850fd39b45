// Replicas for real: tug processes (src/cli.ts) sharing one data directory
// and one redis-server, in front of a real docker-registry behind a
// throttled link. One upstream GET per blob across the fleet, followers
// streaming before the download ends, kill -9 of the holder mid-download,
// and a Redis outage in the middle of a load of pulls.
import { createHash, randomBytes } from "node:crypto";
import { get } from "node:http";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildImage, pushBlob, pushImage, pseudoRandomBytes, sha256, type BuiltImage } from "../helpers/images.js";
import { stopChild, waitUntil } from "../helpers/process.js";
import { startRedis, type RunningRedis } from "../helpers/redis.js";
import { startRegistry, type RunningRegistry } from "../helpers/registry.js";
import { startThrottleProxy, type ThrottleProxy } from "../helpers/throttle-proxy.js";
import { spawnTug, type TugChild } from "../helpers/tug-process.js";
import { tempDir } from "../helpers/tug.js";
import { scrape } from "../helpers/metrics.js";

const MiB = 1 << 20;

let redis: RunningRedis;
let registry: RunningRegistry;
let link: ThrottleProxy;
let big: BuiltImage;
let children: TugChild[] = [];

beforeAll(async () => {
  [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
  big = buildImage({ format: "oci", layers: [{ randomBytes: 64 * MiB, seed: 3 }] });
  await pushImage(registry.directUrl, "fleet/big", "v1", big);
  link = await startThrottleProxy(registry.url, Infinity);
}, 60_000);

afterAll(async () => {
  await link?.close();
  await registry?.stop();
  await redis?.close();
});

afterEach(async () => {
  await Promise.all(children.map((c) => stopChild(c.child)));
  children = [];
});

interface Fleet {
  readonly replicas: TugChild[];
  readonly dataDir: string;
  readonly prefix: string;
}

async function startFleet(n: number): Promise<Fleet> {
  const dataDir = await tempDir("tug-replicas-");
  const prefix = `replicas-${randomBytes(4).toString("hex")}:`;
  const replicas = await Promise.all(
    Array.from({ length: n }, () =>
      spawnTug({
        dataDir,
        config: {
          upstreams: { "docker.io": { url: link.url, default: true } },
          redis: { url: redis.url, prefix, lease: "2s" },
          resilience: { negativeTTL: "0", breakerFailures: "0" },
        },
      }),
    ),
  );
  children.push(...replicas);
  return { replicas, dataDir, prefix };
}

interface Pulled {
  readonly status: number;
  readonly bytes: number;
  readonly digest: string;
  readonly error: string | undefined;
  readonly startedAt: number;
  readonly firstByteAt: number | undefined;
  readonly endedAt: number;
}

/** GET with node:http, hashing as it reads (40 × 64 MiB must not sit in memory). */
function pull(url: string): Promise<Pulled> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    const hash = createHash("sha256");
    let bytes = 0;
    let firstByteAt: number | undefined;
    let status = 0;
    const done = (error: string | undefined): void =>
      resolve({ status, bytes, digest: `sha256:${hash.digest("hex")}`, error, startedAt, firstByteAt, endedAt: Date.now() });
    const req = get(url, (res) => {
      status = res.statusCode ?? 0;
      res.on("data", (c: Buffer) => {
        firstByteAt ??= Date.now();
        bytes += c.length;
        hash.update(c);
      });
      res.on("end", () => done(res.complete ? undefined : "incomplete"));
      res.on("error", (err) => done(err.message));
      res.on("aborted", () => undefined);
    });
    req.on("error", (err) => done(err.message));
  });
}

const blobUrl = (r: TugChild, repo: string, digest: string): string => `${r.url}/v2/${repo}/blobs/${digest}`;

async function blobTemps(dataDir: string): Promise<string[]> {
  return (await readdir(join(dataDir, "tmp")).catch(() => [] as string[])).filter((n) => n.startsWith("blob-"));
}

function spreadPulls(replicas: TugChild[], n: number, repo: string, digest: string): Promise<Pulled[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => pull(blobUrl(replicas[i % replicas.length]!, repo, digest))));
}

describe("one upstream fetch per blob across replicas", () => {
  for (const n of [2, 3]) {
    it(`${n} replicas: 40 concurrent GETs of one uncached 64 MiB blob → 1 upstream GET, 40 right bodies, every first byte before the download ended`, async () => {
      const layer = big.layers[0]!;
      // ≥ 2 s of download: every client's first byte must come well before its end, even on a busy machine.
      link.setRate(32 * MiB);
      const before = link.blobGets(layer.digest).length;
      const fleet = await startFleet(n);
      const results = await spreadPulls(fleet.replicas, 40, "fleet/big", layer.digest);
      const gets = link.blobGets(layer.digest).slice(before);
      expect(gets).toHaveLength(1);
      const downloadEnded = gets[0]!.endedAt!;
      for (const r of results) {
        expect(r).toMatchObject({ status: 200, bytes: layer.size, digest: layer.digest, error: undefined });
        expect(r.firstByteAt!).toBeLessThan(downloadEnded);
      }
      const ttfb = results.map((r) => r.firstByteAt! - r.startedAt).sort((x, y) => x - y);
      console.log(
        `[replicas=${n}] upstream GETs: ${gets.length}; download ${downloadEnded - gets[0]!.startedAt} ms; ` +
          `client TTFB p50 ${ttfb[20]} ms, max ${ttfb[39]} ms; all done ${Math.max(...results.map((r) => r.endedAt)) - Math.min(...results.map((r) => r.startedAt))} ms`,
      );
      expect(await blobTemps(fleet.dataDir)).toEqual([]);
    });
  }
});

describe("the holder killed mid-download", () => {
  it("kill -9 at ~30 %: the other replica takes over (resuming with Range), its clients get the right bytes, nobody gets a clean 200 of wrong bytes, a retry succeeds, no temp file is left", async () => {
    const layer = big.layers[0]!;
    link.setRate(24 * MiB);
    const before = link.blobGets(layer.digest).length;
    const fleet = await startFleet(2);
    const pulls = fleet.replicas.map((r) => Promise.all(Array.from({ length: 10 }, () => pull(blobUrl(r, "fleet/big", layer.digest)))));

    await waitUntil("upstream download at 30 %", () => (link.blobGets(layer.digest)[before]?.sent ?? 0) >= 0.3 * layer.size, { timeoutMs: 30_000 });
    // Who holds the blob's lock: its token names the owner instance, "<pid>-<hex>".
    const token = await redis.client.get(`${fleet.prefix}lease:blob:${layer.digest}`);
    const holderPid = Number(token?.split(":")[1]?.split("-")[0]);
    const holder = fleet.replicas.find((r) => r.pid === holderPid)!;
    const survivor = fleet.replicas.find((r) => r !== holder)!;
    expect(holder).toBeDefined();
    holder.child.kill("SIGKILL");
    await holder.exited;

    const [fromHolder, fromSurvivor] = fleet.replicas[0] === holder ? await Promise.all(pulls) : (await Promise.all(pulls)).reverse();
    // Never a clean, complete 200 of wrong bytes:
    for (const r of [...fromHolder!, ...fromSurvivor!]) {
      if (r.status === 200 && r.error === undefined && r.bytes === layer.size) expect(r.digest).toBe(layer.digest);
    }
    // The killed replica's clients were cut; the survivor's finished, correct.
    for (const r of fromHolder!) expect(r.error).toBeDefined();
    for (const r of fromSurvivor!) expect(r).toMatchObject({ status: 200, bytes: layer.size, digest: layer.digest, error: undefined });

    const gets = link.blobGets(layer.digest).slice(before);
    expect(gets).toHaveLength(2);
    expect(gets[0]!.cut).toBe(true);
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(gets[1]!.range ?? "")?.[1]);
    expect(resumedFrom).toBeGreaterThanOrEqual(0.25 * layer.size);
    console.log(`[kill -9] holder killed at ${Math.round((100 * gets[0]!.sent) / layer.size)} %; survivor resumed with Range bytes=${resumedFrom}- (${Math.round((100 * resumedFrom) / layer.size)} %)`);

    const retry = await pull(blobUrl(survivor, "fleet/big", layer.digest));
    expect(retry).toMatchObject({ status: 200, bytes: layer.size, digest: layer.digest });
    expect(link.blobGets(layer.digest).slice(before)).toHaveLength(2);
    // The dead holder's partial file went with the takeover.
    await waitUntil("no temp file left", async () => (await blobTemps(fleet.dataDir)).length === 0, { timeoutMs: 10_000 });

    // A replica started again on the same directory finds nothing to clean and serves the blob from disk.
    const restarted = await spawnTug({ dataDir: fleet.dataDir, config: { upstreams: { "docker.io": { url: link.url, default: true } }, redis: { url: redis.url, prefix: fleet.prefix, lease: "2s" } } });
    children.push(restarted);
    const again = await pull(blobUrl(restarted, "fleet/big", layer.digest));
    expect(again).toMatchObject({ status: 200, digest: layer.digest });
    expect(link.blobGets(layer.digest).slice(before)).toHaveLength(2);
    expect(await blobTemps(fleet.dataDir)).toEqual([]);
  });
});

describe("the holder shut down mid-download (a rolling update)", () => {
  it("SIGTERM with a short grace: it gives the fetch up and says so; the other replica takes it over at once and its clients get the right bytes", async () => {
    const layer = big.layers[0]!;
    link.setRate(24 * MiB);
    const before = link.blobGets(layer.digest).length;
    const dataDir = await tempDir("tug-replicas-");
    const prefix = `replicas-${randomBytes(4).toString("hex")}:`;
    const config = {
      upstreams: { "docker.io": { url: link.url, default: true } },
      // A long lease: the takeover must come from the holder's "abandoned" notice, not from its lease running out.
      redis: { url: redis.url, prefix, lease: "30s" },
      resilience: { negativeTTL: "0", breakerFailures: "0" },
      limits: { shutdownGrace: "300ms" },
    };
    const replicas = await Promise.all([spawnTug({ dataDir, config }), spawnTug({ dataDir, config })]);
    children.push(...replicas);
    const [a, b] = replicas as [TugChild, TugChild];
    // a leads; b's clients follow a's download.
    const first = pull(blobUrl(a, "fleet/big", layer.digest));
    await waitUntil("a is downloading", () => (link.blobGets(layer.digest)[before]?.sent ?? 0) > 0, { timeoutMs: 30_000 });
    const followers = Promise.all(Array.from({ length: 5 }, () => pull(blobUrl(b, "fleet/big", layer.digest))));
    await waitUntil("download at 20 %", () => (link.blobGets(layer.digest)[before]?.sent ?? 0) >= 0.2 * layer.size, { timeoutMs: 30_000 });
    const stoppedAt = Date.now();
    a.child.kill("SIGTERM");
    expect((await a.exited).code).toBe(0);
    for (const r of await followers) expect(r).toMatchObject({ status: 200, bytes: layer.size, digest: layer.digest, error: undefined });
    const gets = link.blobGets(layer.digest).slice(before);
    expect(gets).toHaveLength(2);
    expect(gets[1]!.range).toMatch(/^bytes=\d+-$/);
    // Well before the 30 s lease would have run out.
    expect(gets[1]!.startedAt - stoppedAt).toBeLessThan(5_000);
    const cut = await first;
    if (cut.status === 200 && cut.error === undefined && cut.bytes === layer.size) expect(cut.digest).toBe(layer.digest);
  });
});

describe("Redis outage during a load of pulls", () => {
  it("Redis stopped mid-load: zero failed pulls, one warning per replica; Redis back: coordination resumes (one upstream GET per blob again)", async () => {
    // 16 blobs of 2 MiB: 4 before the outage, 8 across it, 4 after.
    const blobs = Array.from({ length: 16 }, (_, i) => {
      const data = pseudoRandomBytes(2 * MiB, 1000 + i);
      return { data, digest: sha256(data) };
    });
    await Promise.all(blobs.map((b) => pushBlob(registry.directUrl, "fleet/load", b)));
    link.setRate(16 * MiB);
    const fleet = await startFleet(2);
    const upstreamGets = (digest: string): number => link.blobGets(digest).length;
    const load = (from: number, to: number): Promise<Pulled[]> =>
      Promise.all(blobs.slice(from, to).flatMap((b) => Array.from({ length: 4 }, (_, i) => pull(blobUrl(fleet.replicas[i % 2]!, "fleet/load", b.digest)))));
    const expectAllRight = (results: Pulled[], first: number): void => {
      results.forEach((r, i) => expect(r).toMatchObject({ status: 200, bytes: 2 * MiB, digest: blobs[first + Math.floor(i / 4)]!.digest, error: undefined }));
    };

    const phase1 = await load(0, 4);
    expectAllRight(phase1, 0);
    for (const b of blobs.slice(0, 4)) expect(upstreamGets(b.digest)).toBe(1);

    // Phase 2: the load starts, and Redis dies while it is in flight.
    const phase2 = load(4, 12);
    await waitUntil("downloads in flight", () => blobs.slice(4, 12).some((b) => upstreamGets(b.digest) > 0), { timeoutMs: 10_000 });
    await redis.stop();
    // More pulls start while Redis is down: misses, and hits of phase 1.
    const during = await Promise.all([load(0, 4), phase2]);
    expectAllRight(during[0], 0);
    expectAllRight(during[1], 4);
    const duplicates = blobs.slice(4, 12).map((b) => upstreamGets(b.digest));
    for (const g of duplicates) expect(g).toBeGreaterThanOrEqual(1);
    for (const g of duplicates) expect(g).toBeLessThanOrEqual(2);
    for (const b of blobs.slice(0, 4)) expect(upstreamGets(b.digest)).toBe(1);
    for (const r of fleet.replicas) {
      const s = await scrape(r.url);
      expect(s.get("tug_redis_up")).toBe(0);
      const ready = (await (await fetch(`${r.url}/readyz`)).json()) as { status: string; components: { redis: { state: string; coordination: string } } };
      expect(ready.status).toBe("ready");
      expect(ready.components.redis).toMatchObject({ state: "degraded", coordination: "memory" });
    }

    // Phase 3: Redis comes back (empty); the replicas reconnect by themselves.
    await redis.start();
    for (const r of fleet.replicas) await waitUntil("redis up again", async () => (await scrape(r.url)).get("tug_redis_up") === 1, { timeoutMs: 20_000 });
    const phase3 = await load(12, 16);
    expectAllRight(phase3, 12);
    for (const b of blobs.slice(12, 16)) expect(upstreamGets(b.digest)).toBe(1);
    console.log(`[redis outage] upstream GETs per blob fetched during the outage: ${duplicates.join(", ")}; after Redis came back: ${blobs.slice(12).map((b) => upstreamGets(b.digest)).join(", ")}`);

    // One log line per state change, not per request.
    for (const r of fleet.replicas) {
      const msgs = r.lines().map((l) => String(l["msg"]));
      expect(msgs.filter((m) => m.startsWith("redis unreachable"))).toHaveLength(1);
      expect(msgs.filter((m) => m.startsWith("redis answers again"))).toHaveLength(1);
    }
  });
});
