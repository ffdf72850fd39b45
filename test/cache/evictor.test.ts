// The disk budget on a real directory: least recently used first, blobs before
// manifests, watermarks, nothing in use removed, a lookup racing an eviction
// is a miss (never a vanished file), accesses persisted as mtimes without a
// write per hit, a standalone prune over a data dir, and a start-up index that
// only stats (a 20 GiB sparse "blob" whose bytes do not match its name is
// indexed in milliseconds: nothing is rehashed).
import { mkdir, open, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BlobStore } from "../../src/cache/blob-store.js";
import { Evictor } from "../../src/cache/evictor.js";
import { Layout } from "../../src/cache/layout.js";
import { parseDigest, type Digest } from "../../src/oci/digest.js";
import { Metrics } from "../../src/observability/metrics.js";
import { sha256 } from "../helpers/fixtures.js";
import { key, parseExposition } from "../helpers/metrics.js";
import { startTug, tempDir } from "../helpers/tug.js";

const MiB = 1 << 20;
const silent = pino({ level: "silent" });
let root: string;
let layout: Layout;

beforeEach(async () => {
  root = await tempDir("tug-evict-");
  layout = new Layout(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Writes a content file of `size` bytes last accessed at `at` (epoch ms). */
async function put(kind: "blob" | "manifest", name: string, size: number, at: number): Promise<{ d: Digest; path: string }> {
  const d = parseDigest(sha256(name));
  const path = kind === "blob" ? layout.blob(d) : layout.manifest(d);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, Buffer.alloc(size, 1));
  await utimes(path, at / 1000, at / 1000);
  return { d, path };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

const T0 = 1_700_000_000_000;

describe("Evictor", () => {
  it("past the high watermark removes least recently used blobs down to the low watermark, manifests only after blobs", async () => {
    const a = await put("blob", "a", 2 * MiB, T0 + 1000);
    const b = await put("blob", "b", 2 * MiB, T0 + 3000);
    const c = await put("blob", "c", 2 * MiB, T0 + 2000);
    const m = await put("manifest", "m", 1000, T0); // the oldest of all, still goes last
    let now = T0 + 10_000;
    const metrics = new Metrics();
    const ev = new Evictor({ root, maxSize: 8 * MiB, highWatermark: 0.9, lowWatermark: 0.6, logger: silent, metrics, now: () => now });
    await ev.start();
    expect(ev.usage).toBe(6 * MiB + 1000);
    // A new 2 MiB blob crosses 90 % of 8 MiB: evict to 60 % (4.8 MiB): a (oldest), then c.
    const d = await put("blob", "d", 2 * MiB, now);
    ev.added(d.path, "blob", 2 * MiB);
    await ev.settled();
    expect(await exists(a.path)).toBe(false);
    expect(await exists(c.path)).toBe(false);
    expect(await exists(b.path)).toBe(true);
    expect(await exists(m.path)).toBe(true);
    expect(ev.usage).toBe(4 * MiB + 1000);
    const samples = parseExposition(await metrics.registry.metrics());
    expect(samples.get(key("tug_evictions_total", { kind: "blob" }))).toBe(2);
    expect(samples.get("tug_evicted_bytes_total")).toBe(4 * MiB);
    expect(samples.get("tug_disk_usage_bytes")).toBe(ev.usage);
    // Down to 0: every blob, then the manifest.
    now += 1;
    const r = await ev.evictTo(0);
    expect(r).toMatchObject({ evictedBlobs: 2, evictedManifests: 1, usageBytes: 0 });
    expect(await exists(m.path)).toBe(false);
  });

  it("never removes a blob being read; a lookup that races an eviction is a miss", async () => {
    const a = await put("blob", "a", MiB, T0);
    const b = await put("blob", "b", MiB, T0 + 1);
    const ev = new Evictor({ root, maxSize: 100 * MiB, highWatermark: 0.9, lowWatermark: 0.8, logger: silent, now: () => T0 + 10_000 });
    await ev.start();
    const store = new BlobStore(layout, ev);
    const committed = await store.stat(a.d);
    expect(committed?.size).toBe(MiB);
    const reading = store.read(committed!, 0, MiB - 1);
    const r = await ev.evictTo(0);
    expect(r.skippedInUse).toBe(1);
    expect(await exists(a.path)).toBe(true); // pinned by the reader
    expect(await exists(b.path)).toBe(false);
    let n = 0;
    for await (const chunk of reading as AsyncIterable<Buffer>) n += chunk.length;
    expect(n).toBe(MiB);
    // A lookup that starts just before an eviction pins the file first: it stays.
    const racing = ev.evictTo(0);
    const found = await store.stat(a.d);
    expect((await racing).skippedInUse).toBe(1);
    expect(found?.size).toBe(MiB);
    expect(await exists(a.path)).toBe(true);
    // One that starts while the file is being removed is a miss (refetched), never a file that vanishes.
    await new Promise((resolve) => setImmediate(resolve)); // the lookup's short pin ends
    const evicting = ev.evictTo(0);
    for (let i = 0; i < 10_000 && !ev.isEvicting(a.path); i++) await Promise.resolve();
    expect(ev.isEvicting(a.path)).toBe(true);
    expect(await store.stat(a.d)).toBeUndefined();
    expect((await evicting).evictedBlobs).toBe(1);
    expect(await exists(a.path)).toBe(false);
  });

  it("records accesses in memory and writes them back as mtimes in one batch; a standalone prune reads that order", async () => {
    const a = await put("blob", "a", MiB, T0);
    const b = await put("blob", "b", MiB, T0 + 1000);
    let now = T0 + 5000;
    const ev = new Evictor({ root, maxSize: 100 * MiB, highWatermark: 0.9, lowWatermark: 0.8, logger: silent, now: () => now, flushIntervalMs: 0 });
    await ev.start();
    for (let i = 0; i < 1000; i++) ev.touch(a.path); // a hit costs a map update, no I/O
    expect((await stat(a.path)).mtimeMs).toBe(T0);
    now += 1;
    await ev.close(); // flushes
    expect((await stat(a.path)).mtimeMs).toBe(T0 + 5000);
    // A separate process (e.g. `tug prune`) over the same data dir: b is now the least recently used.
    const prune = await Evictor.open(root, { maxSize: 100 * MiB, highWatermark: 0.9, lowWatermark: 0.8, logger: silent, now: () => T0 + 10_000 });
    const dry = await prune.evictTo(MiB, { dryRun: true });
    expect(dry).toMatchObject({ evictedBlobs: 1, evictedBytes: MiB, usageBytes: MiB });
    expect(await exists(b.path)).toBe(true);
    const older = await prune.evictOlderThan(5_000 + 1); // b (T0+1000) is older than T0+4999; a (T0+5000) is not
    expect(older).toMatchObject({ evictedBlobs: 1, usageBytes: MiB });
    expect(await exists(b.path)).toBe(false);
    expect(await exists(a.path)).toBe(true);
    await prune.close();
  });

  it("indexes a large cache at start-up by stat alone: a 20 GiB sparse blob is neither rehashed nor removed", async () => {
    const d = parseDigest(sha256("not the content"));
    const path = layout.blob(d);
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(path, "w");
    await fh.truncate(20 * 2 ** 30); // sparse: no disk used, but hashing it would take ~a minute
    await fh.close();
    for (let i = 0; i < 2000; i++) await put("blob", `small-${i}`, 10, T0);
    const t0 = Date.now();
    const tug = await startTug({ upstreams: { "docker.io": "http://127.0.0.1:9" }, dataDir: root, cache: { maxSize: "100GiB" } });
    await tug.runtime.evictor.ready;
    const ms = Date.now() - t0;
    const samples = parseExposition(await (await fetch(`${tug.url}/metrics`)).text());
    expect(samples.get("tug_disk_usage_bytes")).toBe(20 * 2 ** 30 + 2000 * 10);
    const head = await fetch(`${tug.url}/v2/library/alpine/blobs/${d.value}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(20 * 2 ** 30));
    await tug.stop();
    expect(ms).toBeLessThan(5_000);
    expect(await readdir(dirname(path))).toContain(d.hex);
    console.log(`start-up with a 20 GiB sparse blob + 2000 small blobs indexed: ${ms} ms`);
  });
});

describe("pruneDataDir (what `tug prune` runs)", () => {
  it("applies --older-than then --max-size; a dry run reports exactly what a real run removes", async () => {
    const a = await put("blob", "a", MiB, T0);
    const b = await put("blob", "b", MiB, T0 + 1000);
    const c = await put("blob", "c", MiB, T0 + 2000);
    const m = await put("manifest", "m", 100, T0);
    const { pruneDataDir } = await import("../../src/cache/evictor.js");
    const opts = { olderThan: 9_500, maxSize: MiB + 100, now: () => T0 + 10_000 };
    const dry = await pruneDataDir(root, { ...opts, dryRun: true });
    expect(await exists(a.path)).toBe(true);
    const real = await pruneDataDir(root, opts);
    expect(dry).toEqual(real);
    expect(real).toMatchObject({ evictedBlobs: 2, evictedManifests: 1, evictedBytes: 2 * MiB + 100, usageBytes: MiB });
    expect(await exists(c.path)).toBe(true);
    expect(await exists(b.path)).toBe(false);
    expect(await exists(m.path)).toBe(false);
  });
});
