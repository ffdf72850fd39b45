// The disk budget (cache.maxSize): past the high watermark, the least recently
// used content is removed down to the low watermark (PROTOCOL.md lesson 7).
//
// Rules that keep every pull working:
// - Nothing being read or written is removed: fills write to tmp/ (never in
//   the index); readers pin the file they serve (BlobStore), and a lookup that
//   starts while a file is being removed is answered as a miss (refetched).
// - Blobs go first, manifests only after: a manifest whose layers were evicted
//   still pulls (each blob is refetched by digest on its miss), so removing a
//   manifest with or after its blobs never strands a client.
// - On disk full (ENOSPC) during a fill, room is made at once.
//
// The same class serves the in-process budget (createRuntime) and a one-off
// prune over a data dir (Evictor.open(dataDir) → evictTo / evictOlderThan),
// e.g. a `tug prune` command next to a running tug: it reads last accesses
// from the files' mtimes, which a running tug writes back every flush interval.
import { unlink } from "node:fs/promises";
import { pino, type Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";
import { DiskIndex, type EntryKind, type IndexEntry } from "./disk-index.js";

const silentLogger: Logger = pino({ level: "silent" });

export interface EvictorOptions {
  /** The data directory (blobs/ and manifests/ under it). */
  readonly root: string;
  /** cache.maxSize in bytes. */
  readonly maxSize: number;
  /** Fractions of maxSize (limits.diskHighWatermark / diskLowWatermark). */
  readonly highWatermark: number;
  readonly lowWatermark: number;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly now?: () => number;
  /** How often recorded accesses are written back as mtimes (default 30 s; 0 = only on close). */
  readonly flushIntervalMs?: number;
}

export interface EvictionResult {
  readonly evictedFiles: number;
  readonly evictedBlobs: number;
  readonly evictedManifests: number;
  readonly evictedBytes: number;
  /** Committed bytes left in the cache. */
  readonly usageBytes: number;
  /** Files skipped because something was reading them. */
  readonly skippedInUse: number;
}

/** What the stores call: cheap, synchronous, safe on the hot path. */
export interface DiskBudget {
  touch(path: string): void;
  /** Keeps path from being removed until the returned function is called. */
  pin(path: string): () => void;
  /** True while path is being removed: treat it as a miss. */
  isEvicting(path: string): boolean;
  /** A lookup found path missing (removed by another process). */
  forget(path: string): void;
  /** A verified file was committed. */
  added(path: string, kind: EntryKind, size: number): void;
  /** A fill of about `bytes` started; the returned function ends the reservation. */
  reserve(bytes: number): () => void;
  /** A write failed with ENOSPC; `bytes` more were needed. */
  noSpace(bytes: number): void;
}

export class Evictor implements DiskBudget {
  readonly index: DiskIndex;
  readonly #o: EvictorOptions;
  readonly #now: () => number;
  readonly #pins = new Map<string, number>();
  readonly #evicting = new Set<string>();
  #reserved = 0;
  #running: Promise<EvictionResult> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #ready: Promise<void> | undefined;

  constructor(opts: EvictorOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.index = new DiskIndex(opts.root);
  }

  /** A standalone evictor over a data dir (e.g. for a prune command): the index is built before it returns. */
  static async open(root: string, opts: Omit<EvictorOptions, "root">): Promise<Evictor> {
    const ev = new Evictor({ ...opts, root, flushIntervalMs: 0 });
    await ev.start();
    return ev;
  }

  /** Builds the index (in the background when awaited later) and starts the periodic flush. */
  start(): Promise<void> {
    this.#ready ??= this.index.build().then(() => {
      this.#o.metrics?.diskUsage.set(this.index.usage);
      this.#o.logger.info({ files: this.index.size, bytes: this.index.usage }, "disk index built");
      this.#check();
    });
    const every = this.#o.flushIntervalMs ?? 30_000;
    if (every > 0 && !this.#timer) {
      this.#timer = setInterval(() => void this.index.flush().catch(() => undefined), every);
      this.#timer.unref();
    }
    return this.#ready;
  }

  get ready(): Promise<void> {
    return this.start();
  }

  get usage(): number {
    return this.index.usage;
  }

  get highBytes(): number {
    return Math.floor(this.#o.maxSize * this.#o.highWatermark);
  }

  get lowBytes(): number {
    return Math.floor(this.#o.maxSize * this.#o.lowWatermark);
  }

  // ---- DiskBudget (hot path) ----------------------------------------------

  touch(path: string): void {
    this.index.touch(path, this.#now());
  }

  pin(path: string): () => void {
    this.#pins.set(path, (this.#pins.get(path) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#pins.get(path) ?? 1) - 1;
      if (n <= 0) this.#pins.delete(path);
      else this.#pins.set(path, n);
    };
  }

  isEvicting(path: string): boolean {
    return this.#evicting.has(path);
  }

  forget(path: string): void {
    if (this.index.remove(path)) this.#o.metrics?.diskUsage.set(this.index.usage);
  }

  added(path: string, kind: EntryKind, size: number): void {
    this.index.add(path, kind, size, this.#now());
    this.#o.metrics?.diskUsage.set(this.index.usage);
    this.#check();
  }

  reserve(bytes: number): () => void {
    this.#reserved += bytes;
    this.#check();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#reserved -= bytes;
    };
  }

  noSpace(bytes: number): void {
    const target = Math.max(0, Math.min(this.lowBytes, this.index.usage - bytes));
    this.#o.logger.warn({ needed: bytes, usage: this.index.usage, target }, "disk full during a fill: passing the blob through uncached, evicting");
    void this.evictTo(target);
  }

  // ---- eviction -------------------------------------------------------------

  /**
   * Removes least recently used content (blobs first, then manifests) until at
   * most `bytes` remain. dryRun: reports what would go and removes nothing.
   */
  evictTo(bytes: number, opts: { dryRun?: boolean } = {}): Promise<EvictionResult> {
    return this.#run(() => this.#evict((usage) => usage > bytes, () => true, opts.dryRun === true));
  }

  /** Removes content not accessed for `ms` (blobs first, then manifests). */
  evictOlderThan(ms: number, opts: { dryRun?: boolean } = {}): Promise<EvictionResult> {
    const cutoff = this.#now() - ms;
    return this.#run(() => this.#evict(() => true, (e) => e.lastAccess < cutoff, opts.dryRun === true));
  }

  /** Resolves when no eviction is running or queued. */
  async settled(): Promise<void> {
    while (this.#running) await this.#running.catch(() => undefined);
  }

  /** Stops the flush timer and writes recorded accesses back. */
  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.settled();
    await this.index.flush().catch(() => undefined);
  }

  #check(): void {
    if (!this.index.ready) return;
    if (this.index.usage + this.#reserved <= this.highBytes) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    void this.evictTo(Math.max(0, this.lowBytes - this.#reserved));
  }

  /** One eviction at a time; callers queue behind the one running. */
  #run(pass: () => Promise<EvictionResult>): Promise<EvictionResult> {
    const prev = this.#running ?? Promise.resolve(undefined);
    const p: Promise<EvictionResult> = prev
      .catch(() => undefined)
      .then(async () => {
        await this.start();
        return pass();
      })
      .finally(() => {
        if (this.#running === p) this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.#check();
        }
      });
    this.#running = p;
    return p;
  }

  async #evict(over: (usage: number) => boolean, eligible: (e: IndexEntry) => boolean, dryRun: boolean): Promise<EvictionResult> {
    const { metrics, logger } = this.#o;
    const byAge = (a: IndexEntry, b: IndexEntry): number => a.lastAccess - b.lastAccess;
    const all = [...this.index.entries()].filter(eligible);
    const order = [...all.filter((e) => e.kind === "blob").sort(byAge), ...all.filter((e) => e.kind === "manifest").sort(byAge)];
    let bytes = 0;
    let skipped = 0;
    const count = { blob: 0, manifest: 0 };
    for (const e of order) {
      if (!over(this.index.usage - (dryRun ? bytes : 0))) break;
      // Checked and marked synchronously: a lookup either pinned it first, or sees it as a miss.
      if (this.#pins.has(e.path)) {
        skipped++;
        continue;
      }
      if (dryRun) {
        count[e.kind]++;
        bytes += e.size;
        continue;
      }
      if (this.index.get(e.path) !== e) continue; // re-added or removed meanwhile
      this.#evicting.add(e.path);
      this.index.remove(e.path);
      try {
        await unlink(e.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
          logger.warn({ path: e.path, reason: (err as Error).message }, "could not evict a cached file");
          this.index.add(e.path, e.kind, e.size, e.lastAccess);
          continue;
        }
      } finally {
        this.#evicting.delete(e.path);
      }
      count[e.kind]++;
      bytes += e.size;
      metrics?.evictions.inc({ kind: e.kind });
      metrics?.evictedBytes.inc(e.size);
    }
    const files = count.blob + count.manifest;
    const usageBytes = this.index.usage - (dryRun ? bytes : 0);
    if (dryRun) return { evictedFiles: files, evictedBlobs: count.blob, evictedManifests: count.manifest, evictedBytes: bytes, usageBytes, skippedInUse: skipped };
    metrics?.diskUsage.set(this.index.usage);
    if (files > 0 || skipped > 0) {
      logger.info({ evictedBlobs: count.blob, evictedManifests: count.manifest, evictedBytes: bytes, usageBytes, skippedInUse: skipped }, "evicted least recently used content");
    }
    return { evictedFiles: files, evictedBlobs: count.blob, evictedManifests: count.manifest, evictedBytes: bytes, usageBytes, skippedInUse: skipped };
  }
}

export interface PruneOptions {
  /** Evict least recently used content until at most this many bytes remain. */
  readonly maxSize?: number;
  /** Evict content not accessed for this many ms. */
  readonly olderThan?: number;
  /** Report what would go; remove nothing. */
  readonly dryRun?: boolean;
  readonly now?: () => number;
  readonly logger?: Logger;
}

/**
 * One prune over a data dir (what `tug prune` runs), safe next to a running
 * tug on the same dir: last accesses come from the files' mtimes (a running
 * tug writes its recorded accesses back every 30 s), removal is by unlink (a
 * reader that already opened the file keeps reading it), and a running tug
 * treats a file that vanished as a miss and refetches it.
 */
export async function pruneDataDir(root: string, opts: PruneOptions): Promise<EvictionResult> {
  const logger = opts.logger ?? silentLogger;
  const ev = await Evictor.open(root, { maxSize: Number.MAX_SAFE_INTEGER, highWatermark: 1, lowWatermark: 1, logger, ...(opts.now ? { now: opts.now } : {}) });
  const now = (opts.now ?? Date.now)();
  const dryRun = opts.dryRun === true;
  let total: EvictionResult = { evictedFiles: 0, evictedBlobs: 0, evictedManifests: 0, evictedBytes: 0, usageBytes: ev.usage, skippedInUse: 0 };
  const add = (r: EvictionResult): void => {
    total = {
      evictedFiles: total.evictedFiles + r.evictedFiles,
      evictedBlobs: total.evictedBlobs + r.evictedBlobs,
      evictedManifests: total.evictedManifests + r.evictedManifests,
      evictedBytes: total.evictedBytes + r.evictedBytes,
      usageBytes: r.usageBytes,
      skippedInUse: total.skippedInUse + r.skippedInUse,
    };
  };
  if (dryRun) {
    // Both rules over one plan, so a dry run reports exactly what a real run removes.
    const cutoff = opts.olderThan !== undefined ? now - opts.olderThan : -Infinity;
    const byAge = (a: IndexEntry, b: IndexEntry): number => a.lastAccess - b.lastAccess;
    const all = [...ev.index.entries()];
    const order = [...all.filter((e) => e.kind === "blob").sort(byAge), ...all.filter((e) => e.kind === "manifest").sort(byAge)];
    let usage = ev.usage;
    const count = { blob: 0, manifest: 0 };
    let bytes = 0;
    const take = (e: IndexEntry): void => {
      count[e.kind]++;
      bytes += e.size;
      usage -= e.size;
    };
    const old = order.filter((e) => e.lastAccess < cutoff);
    old.forEach(take);
    for (const e of order) {
      if (opts.maxSize === undefined || usage <= opts.maxSize) break;
      if (!old.includes(e)) take(e);
    }
    await ev.close();
    return { evictedFiles: count.blob + count.manifest, evictedBlobs: count.blob, evictedManifests: count.manifest, evictedBytes: bytes, usageBytes: usage, skippedInUse: 0 };
  }
  if (opts.olderThan !== undefined) add(await ev.evictOlderThan(opts.olderThan));
  if (opts.maxSize !== undefined) add(await ev.evictTo(opts.maxSize));
  await ev.close();
  return total;
}
