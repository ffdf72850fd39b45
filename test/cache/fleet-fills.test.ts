// Replicas in one test process: two (or three) tug runtimes sharing one data
// directory and one real redis-server, in front of a scripted upstream. What
// the fleet promises: one upstream fetch per blob and per manifest, followers
// streaming the holder's growing file, a dead holder's fetch taken over and
// resumed (Range) from its bytes, tag records fresh on every replica, and
// never a clean 200 of wrong bytes. (test/integration/replicas.test.ts does
// the same with real processes, kill -9 and a real docker-registry.)
import { randomBytes } from "node:crypto";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { RedisCoordinator } from "../../src/coordination/redis-coordinator.js";
import { leaseKeys } from "../../src/coordination/coordinator.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture, sha256 } from "../helpers/fixtures.js";
import { waitUntil } from "../helpers/process.js";
import { startRedis, type RunningRedis } from "../helpers/redis.js";
import { startTug, tempDir, type TestTug } from "../helpers/tug.js";

let redis: RunningRedis;
let up: FaultServer;
let dataDir: string;
let prefix: string;
let replicas: TestTug[] = [];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});
beforeEach(async () => {
  up = await startFaultServer();
  dataDir = await tempDir("tug-fleet-");
  prefix = `fleet-${randomBytes(4).toString("hex")}:`;
});
afterEach(async () => {
  await Promise.all(replicas.map((r) => r.stop()));
  replicas = [];
  await up.close();
});

async function startReplicas(n: number): Promise<TestTug[]> {
  replicas = await Promise.all(
    Array.from({ length: n }, () =>
      startTug({
        upstreams: { "docker.io": up.url },
        dataDir,
        cache: { tagTTL: "5m", staleIfError: "1h" },
        extra: { redis: { url: redis.url, prefix, lease: "1s" }, resilience: { negativeTTL: "0", breakerFailures: "0" } },
      }),
    ),
  );
  return replicas;
}

interface Pulled {
  status: number;
  bytes: Buffer;
  error: unknown;
  firstByteAt: number | undefined;
}

async function pull(url: string, headers: Record<string, string> = {}): Promise<Pulled> {
  const res = await fetch(url, { headers });
  const chunks: Buffer[] = [];
  let firstByteAt: number | undefined;
  try {
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) {
      firstByteAt ??= Date.now();
      chunks.push(Buffer.from(c));
    }
    return { status: res.status, bytes: Buffer.concat(chunks), error: undefined, firstByteAt };
  } catch (error) {
    return { status: res.status, bytes: Buffer.concat(chunks), error, firstByteAt };
  }
}

/** Serves blob with Range support, `chunk` bytes every `everyMs`; records when each body ended. */
function rangedTrickle(blob: Buffer, opts: { chunk: number; everyMs: number; honourRange?: boolean; ended?: number[] }) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const m = opts.honourRange === false ? null : /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const from = m ? Number(m[1]) : 0;
    const body = blob.subarray(from);
    res.writeHead(m ? 206 : 200, {
      "content-length": String(body.length),
      ...(m ? { "content-range": `bytes ${from}-${blob.length - 1}/${blob.length}` } : {}),
    });
    if (req.method === "HEAD") return void res.end();
    let off = 0;
    const tick = (): void => {
      if (res.destroyed) return;
      const next = body.subarray(off, off + opts.chunk);
      off += next.length;
      if (off >= body.length) {
        res.end(next);
        opts.ended?.push(Date.now());
        return;
      }
      res.write(next);
      setTimeout(tick, opts.everyMs);
    };
    tick();
  };
}

const tempFiles = async (): Promise<string[]> => (await readdir(join(dataDir, "tmp")).catch(() => [] as string[])).filter((n) => n.startsWith("blob-"));

describe("blobs across replicas", () => {
  it("30 concurrent GETs spread over 3 replicas: one upstream GET, 30 right bodies, every first byte before the upstream finished", async () => {
    const fx = makeFixture(4 << 20);
    const path = `/v2/library/alpine/blobs/${fx.blobDigest}`;
    const ended: number[] = [];
    up.on(path, { kind: "handler", fn: rangedTrickle(fx.blob, { chunk: 128 << 10, everyMs: 20, ended }) });
    const rs = await startReplicas(3);
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => pull(rs[i % 3]!.url + path)));
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(200);
      expect(sha256(r.bytes)).toBe(fx.blobDigest);
    }
    expect(up.count({ method: "GET", pathIncludes: "/blobs/" })).toBe(1);
    expect(ended).toHaveLength(1);
    for (const r of results) expect(r.firstByteAt!).toBeLessThan(ended[0]!);
    // Replicas that did not fetch waited on the lock and followed the file.
    const waits = await Promise.all(rs.map(async (r) => (await r.runtime.metrics.lockWaits.get()).values[0]?.value ?? 0));
    expect(waits.filter((w) => w > 0)).toHaveLength(2);
    expect(await tempFiles()).toEqual([]);
  });

  it("a Range request on a follower replica gets its slice while the holder downloads", async () => {
    const fx = makeFixture(4 << 20);
    const path = `/v2/library/alpine/blobs/${fx.blobDigest}`;
    up.on(path, { kind: "handler", fn: rangedTrickle(fx.blob, { chunk: 128 << 10, everyMs: 10 }) });
    const [a, b] = await startReplicas(2);
    const whole = pull(a!.url + path);
    await waitUntil("a is fetching", () => up.count({ method: "GET" }) === 1);
    const slice = await pull(b!.url + path, { range: "bytes=1000000-1999999" });
    expect(slice.status).toBe(206);
    expect(slice.bytes.equals(fx.blob.subarray(1_000_000, 2_000_000))).toBe(true);
    expect(sha256((await whole).bytes)).toBe(fx.blobDigest);
    expect(up.count({ method: "GET", pathIncludes: "/blobs/" })).toBe(1);
  });

  it("a holder whose upstream sends wrong bytes: no replica's client gets a clean 200 of them, nothing is cached, a retry fetches again", async () => {
    const fx = makeFixture(2 << 20);
    const path = `/v2/library/alpine/blobs/${fx.blobDigest}`;
    const wrong = Buffer.from(fx.blob);
    wrong[wrong.length - 10] = wrong[wrong.length - 10]! ^ 0xff;
    up.on(path, { kind: "handler", fn: rangedTrickle(wrong, { chunk: 128 << 10, everyMs: 10 }) });
    const rs = await startReplicas(2);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => pull(rs[i % 2]!.url + path)));
    for (const r of results) {
      const clean200 = r.status === 200 && r.error === undefined;
      expect(clean200).toBe(false);
    }
    expect(up.count({ method: "GET", pathIncludes: "/blobs/" })).toBe(1);
    up.on(path, { kind: "bytes", body: fx.blob });
    const retry = await pull(rs[1]!.url + path);
    expect(sha256(retry.bytes)).toBe(fx.blobDigest);
    expect(await tempFiles()).toEqual([]);
  });
});

describe("a holder that dies mid-fetch", () => {
  /**
   * Plays a replica that took the lease, wrote part of the blob to its temp
   * file and died: a lease that nobody renews and a partial file.
   */
  async function ghostHolder(blob: Buffer, digest: string, partial: Buffer): Promise<{ temp: string; close(): Promise<void> }> {
    const ghost = RedisCoordinator.connect(redis.url, { prefix, owner: "1-deaddeaddead", leaseMs: 1_000 });
    await waitUntil("ghost connected", () => ghost.client.status === "ready");
    const lease = (await ghost.tryAcquire(leaseKeys.blob(digest), { leaseMs: 1_000, renew: false })).lease!;
    await mkdir(join(dataDir, "tmp"), { recursive: true });
    const name = `blob-${digest.slice(7, 19)}.1-deaddeaddead.abcdef012345.tmp`;
    await writeFile(join(dataDir, "tmp", name), partial);
    await lease.setData(JSON.stringify({ temp: `tmp/${name}`, size: blob.length, from: null }));
    return { temp: name, close: () => ghost.close() };
  }

  for (const honourRange of [true, false]) {
    it(`is taken over by a follower that resumes from its bytes (upstream ${honourRange ? "honours" : "ignores"} Range); clients get the right bytes; its temp file is removed`, async () => {
      const fx = makeFixture(4 << 20);
      const path = `/v2/library/alpine/blobs/${fx.blobDigest}`;
      const third = Math.floor(fx.blob.length * 0.3);
      up.on(path, { kind: "handler", fn: rangedTrickle(fx.blob, { chunk: 256 << 10, everyMs: 5, honourRange }) });
      const [a, b] = await startReplicas(2);
      const ghost = await ghostHolder(fx.blob, fx.blobDigest, fx.blob.subarray(0, third));
      try {
        const results = await Promise.all(Array.from({ length: 6 }, (_, i) => pull((i % 2 ? a! : b!).url + path)));
        for (const r of results) {
          expect(r.error).toBeUndefined();
          expect(r.status).toBe(200);
          expect(sha256(r.bytes)).toBe(fx.blobDigest);
        }
        const gets = up.requests.filter((r) => r.method === "GET" && r.path === path);
        expect(gets).toHaveLength(1);
        expect(gets[0]!.headers["range"]).toBe(`bytes=${third}-`);
        await waitUntil("ghost temp removed", async () => !(await tempFiles()).includes(ghost.temp));
        expect(await tempFiles()).toEqual([]);
      } finally {
        await ghost.close();
      }
    });
  }

  it("whose partial bytes were wrong: a resuming upstream completes the blob, the hash fails, no clean 200; a retry succeeds", async () => {
    const fx = makeFixture(2 << 20);
    const path = `/v2/library/alpine/blobs/${fx.blobDigest}`;
    const third = Math.floor(fx.blob.length * 0.3);
    const bad = Buffer.from(fx.blob.subarray(0, third));
    bad[100] = bad[100]! ^ 0xff;
    up.on(path, { kind: "handler", fn: rangedTrickle(fx.blob, { chunk: 256 << 10, everyMs: 5 }) });
    const [a, b] = await startReplicas(2);
    const ghost = await ghostHolder(fx.blob, fx.blobDigest, bad);
    try {
      const results = await Promise.all(Array.from({ length: 4 }, (_, i) => pull((i % 2 ? a! : b!).url + path)));
      for (const r of results) expect(r.status === 200 && r.error === undefined && sha256(r.bytes) !== fx.blobDigest).toBe(false);
      expect(results.some((r) => r.error !== undefined || r.status >= 500)).toBe(true);
      const retry = await pull(a!.url + path);
      expect(sha256(retry.bytes)).toBe(fx.blobDigest);
    } finally {
      await ghost.close();
    }
  });
});

describe("manifests across replicas", () => {
  it("a tag missed on both replicas at once is fetched once; revalidated by one, it is fresh on the other", async () => {
    const fx = makeFixture(1024);
    const path = "/v2/library/alpine/manifests/3.20";
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    up.on(`GET ${path}`, {
      kind: "handler",
      fn: (_req, res) => {
        // Slow enough that both replicas' misses overlap.
        void gate.then(() => {
          res.writeHead(200, { "content-type": fx.mediaType, "docker-content-digest": fx.manifestDigest, "content-length": String(fx.manifest.length) });
          res.end(fx.manifest);
        });
      },
    });
    up.on(`HEAD ${path}`, { kind: "bytes", body: fx.manifest, headers: { "content-type": fx.mediaType, "docker-content-digest": fx.manifestDigest } });
    const [a, b] = await startReplicas(2);
    const pending = Promise.all([fetch(a!.url + path), fetch(b!.url + path), fetch(a!.url + path), fetch(b!.url + path)]);
    await waitUntil("one GET upstream", () => up.count({ method: "GET" }) === 1);
    // b waits on a's lock instead of sending its own GET:
    await waitUntil("b waits on the lock", async () => ((await b!.runtime.metrics.lockWaits.get()).values[0]?.value ?? 0) + ((await a!.runtime.metrics.lockWaits.get()).values[0]?.value ?? 0) >= 1);
    release();
    const responses = await pending;
    for (const r of responses) {
      expect(r.status).toBe(200);
      expect(Buffer.from(await r.arrayBuffer()).equals(fx.manifest)).toBe(true);
    }
    expect(up.count({ method: "GET", pathIncludes: "/manifests/" })).toBe(1);

    // Past tagTTL on both: a revalidates (one HEAD); b then finds the record fresh, with no upstream request.
    a!.advance(6 * 60_000);
    b!.advance(6 * 60_000);
    const ra = await fetch(a!.url + path);
    expect(ra.headers.get("x-cache")).toBe("REVALIDATED");
    await ra.arrayBuffer();
    const rb = await fetch(b!.url + path);
    expect(rb.headers.get("x-cache")).toBe("HIT");
    await rb.arrayBuffer();
    expect(up.count({ method: "HEAD", pathIncludes: "/manifests/" })).toBe(1);
    expect(up.count({ method: "GET", pathIncludes: "/manifests/" })).toBe(1);
  });

  it("a manifest by digest missed on three replicas at once is fetched once", async () => {
    const fx = makeFixture(1024);
    const path = `/v2/library/alpine/manifests/${fx.manifestDigest}`;
    up.on(path, { kind: "trickle", body: fx.manifest, chunk: 64, everyMs: 10, headers: { "content-type": fx.mediaType } });
    const rs = await startReplicas(3);
    const responses = await Promise.all(Array.from({ length: 9 }, (_, i) => fetch(rs[i % 3]!.url + path)));
    for (const r of responses) expect(Buffer.from(await r.arrayBuffer()).equals(fx.manifest)).toBe(true);
    expect(up.count({ method: "GET", pathIncludes: "/manifests/" })).toBe(1);
  });
});
