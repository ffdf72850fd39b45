// One upstream body written to a temp file, hashed while it is written, and
// renamed into place only when its digest and size match. Every client of the
// blob — the one that caused the fetch and any that arrive later — reads the
// growing file through a FillReader, so a slow or departed client never slows
// or stops the fill (PROTOCOL.md lessons 1, 2, 4).
//
// Disk full (ENOSPC/EDQUOT) mid-fill: the fill "spills" — it stops writing,
// keeps hashing, and hands the rest of the upstream body to the readers it
// already has from a bounded memory window (the prefix already on disk stays
// readable through file handles they hold); the temp file is removed, nothing
// is cached, and the store is told so it can evict. While spilled, the slowest
// reader paces the upstream (there is no file to decouple them any more).
import { EventEmitter, once } from "node:events";
import { createHash } from "node:crypto";
import { mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable } from "node:stream";
import type { Digest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { nextFillEvent } from "./fill-events.js";
import { BIG_BUFFER_SENDS, SMALL_FILE_CHUNK, filePool, smallFilePool } from "./buffer-pool.js";
import { noteUpstreamBytes } from "../observability/chunk-churn.js";
import { bodyChunks } from "./body-chunks.js";

export type FillState = "running" | "done" | "failed";

/** Most pass-through bytes a spilled fill keeps in memory before it stops reading the upstream. */
export const SPILL_WINDOW_BYTES = 8 << 20;

/**
 * The newest bytes of a fill kept in memory after they are written, so that
 * readers at the head (the first client, and followers that keep up) are fed
 * the upstream's own chunks instead of re-reading each one from the file: 20
 * followers cost 20 thread-pool reads per upstream chunk otherwise (issue 7).
 */
export const RECENT_WINDOW_BYTES = 4 << 20;

/**
 * A fill writes its temp file in batches of up to WRITE_BATCH_BYTES (or
 * WRITE_BATCH_CHUNKS socket reads), and never holds a batch longer than
 * WRITE_BATCH_MS. One thread-pool write per upstream socket read (~64 KiB)
 * cost ~140 µs of the event loop's time each on the bench machine (the hand-off
 * and wake-up, not the copy): over half a second for a 256 MiB layer (profile,
 * issue 7). Readers learn of each batch once it is on disk, so a follower's
 * bytes come at most WRITE_BATCH_MS later.
 */
export const WRITE_BATCH_BYTES = 1 << 20;
export const WRITE_BATCH_CHUNKS = 256;
export const WRITE_BATCH_MS = 10;

/** Bytes past the disk-full point, held in memory until every reader has passed them. */
export interface Spill {
  /** Bytes [0, diskEnd) are in the (unlinked) temp file that readers hold open. */
  readonly diskEnd: number;
  chunks: Buffer[];
  /** Absolute offset of chunks[0]. */
  chunkStart: number;
  bytes: number;
}

const DUE = Symbol("due");

/** p, marked handled: it may reject while the fill is writing, before anyone awaits it again. */
function pending<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/** A batch's deadline: resolves to DUE after ms, unless cancelled first. One timer per batch, not per chunk. */
function deadline(ms: number): { due: Promise<typeof DUE>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const due = new Promise<typeof DUE>((resolve) => {
    timer = setTimeout(resolve, ms, DUE);
    timer.unref();
  });
  return { due, cancel: () => clearTimeout(timer) };
}

/** Writes chunks (n bytes in all) at pos, however many calls it takes. */
async function writeAll(fh: FileHandle, chunks: Buffer[], n: number, pos: number): Promise<void> {
  let done = 0;
  let rest = chunks;
  for (;;) {
    const { bytesWritten } = await fh.writev(rest, pos + done);
    done += bytesWritten;
    if (done >= n) return;
    // A short write: go on from the first byte not written.
    let skip = done;
    let i = 0;
    while (skip >= chunks[i]!.length) skip -= chunks[i++]!.length;
    rest = [chunks[i]!.subarray(skip), ...chunks.slice(i + 1)];
  }
}

function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "ENOSPC" || code === "EDQUOT";
}

export class BlobFill extends EventEmitter {
  readonly digest: Digest;
  readonly tempPath: string;
  readonly finalPath: string;
  /** Expected size from the upstream's Content-Length, when it sent one. */
  readonly expectedSize: number | undefined;
  written = 0;
  state: FillState = "running";
  error: Error | undefined;
  /** Settles when the fill is committed or passed through (resolves) or abandoned (rejects). */
  readonly finished: Promise<void>;
  /** True once the verified blob is in its final place (false for a spilled pass-through). */
  cached = false;
  /** True when tug itself gave the fill up (shutdown, disk full with no reader left): not the upstream's fault. */
  abandonedByTug = false;
  /** Set when the disk filled up mid-fill. */
  spill: Spill | undefined;
  /** Called once when the fill spills (the store stops offering it to new readers and makes room). */
  onSpill: ((fill: BlobFill) => void) | undefined;
  /** Readers following this fill (a spilled fill trims its memory window by their positions). */
  readonly readers = new Set<FillReader>();
  /** The newest written chunks (see RECENT_WINDOW_BYTES); #recentStart is the offset of the first. */
  readonly #recent: Buffer[] = [];
  #recentStart = 0;
  #recentBytes = 0;

  constructor(digest: Digest, tempPath: string, finalPath: string, expectedSize: number | undefined) {
    super();
    this.setMaxListeners(0);
    this.digest = digest;
    this.tempPath = tempPath;
    this.finalPath = finalPath;
    this.expectedSize = expectedSize;
    this.finished = new Promise<void>((resolve, reject) => {
      this.once("done", resolve);
      this.once("failed", reject);
    });
    // Nobody may be awaiting `finished`; a failure is reported to readers instead.
    this.finished.catch(() => undefined);
  }

  /** Total size once known: the verified size when done, else the upstream's claim. */
  get size(): number | undefined {
    return this.state === "done" ? this.written : this.expectedSize;
  }

  #body: Readable | undefined;

  /** Abandons the fill: readers get an error, the temp file is removed. */
  abort(reason: string): void {
    this.abandonedByTug = true;
    this.#body?.destroy(new RegistryError("UNAVAILABLE", reason));
    this.emit("wake");
  }

  /**
   * Resolves once the fill has a byte a reader may send (the last one is always
   * held back) or has finished; rejects if it failed first. Waiting for this
   * before answering lets a fill that dies before its first byte (a trickle
   * that times out, a refused body) become a clear 5xx instead of a cut
   * connection with no status at all.
   */
  async started(): Promise<void> {
    while (this.state === "running" && this.written < 2) {
      await nextFillEvent(this);
    }
    if (this.state === "failed") throw this.error ?? new Error("fill failed");
  }

  /** Bytes at pos from the spill window (a view of one chunk, at most up to `upto`), or undefined if dropped. */
  readSpilled(pos: number, upto: number): Buffer | undefined {
    const sp = this.spill;
    if (!sp || pos < sp.chunkStart) return undefined;
    let start = sp.chunkStart;
    for (const c of sp.chunks) {
      if (pos < start + c.length) return c.subarray(pos - start, Math.min(c.length, upto - start));
      start += c.length;
    }
    return undefined;
  }

  /** Bytes at pos from the newest written chunks (a view of one chunk, at most up to `upto`), or undefined when pos is older. */
  readRecent(pos: number, upto: number): Buffer | undefined {
    if (pos < this.#recentStart) return undefined;
    let start = this.#recentStart;
    for (const c of this.#recent) {
      if (pos < start + c.length) return c.subarray(pos - start, Math.min(c.length, upto - start));
      start += c.length;
    }
    return undefined;
  }

  #keepRecent(chunk: Buffer): void {
    this.#recent.push(chunk);
    this.#recentBytes += chunk.length;
    while (this.#recentBytes - this.#recent[0]!.length >= RECENT_WINDOW_BYTES) {
      const old = this.#recent.shift()!;
      this.#recentStart += old.length;
      this.#recentBytes -= old.length;
    }
  }

  /** A reader advanced or left: drop what every reader has passed and let the upstream flow again. */
  consumed(): void {
    const sp = this.spill;
    if (sp) {
      let min = Infinity;
      for (const r of this.readers) min = Math.min(min, r.position);
      while (sp.chunks.length > 0 && sp.chunkStart + sp.chunks[0]!.length <= min) {
        const c = sp.chunks.shift()!;
        sp.chunkStart += c.length;
        sp.bytes -= c.length;
      }
    }
    this.emit("consumed");
  }

  async #startSpill(): Promise<void> {
    this.spill = { diskEnd: this.written, chunks: [], chunkStart: this.written, bytes: 0 };
    this.onSpill?.(this);
    // Readers still inside the on-disk prefix keep a handle, so the name can go now.
    await Promise.all([...this.readers].map((r) => r.holdFile().catch(() => undefined)));
    await rm(this.tempPath, { force: true }).catch(() => undefined);
  }

  /** Pumps body into the temp file. Resolves when the fill has settled either way. */
  async run(body: Readable, opts: { timeoutMs: number }): Promise<void> {
    this.#body = body;
    let fh: FileHandle | undefined;
    const timer = setTimeout(() => {
      body.destroy(new RegistryError("UNAVAILABLE", "blob fill exceeded its time limit", { status: 504 }));
      this.emit("wake");
    }, opts.timeoutMs);
    timer.unref();
    try {
      await mkdir(dirname(this.tempPath), { recursive: true });
      try {
        fh = await open(this.tempPath, "wx");
      } catch (err) {
        if (!isNoSpace(err)) throw err;
        await this.#startSpill();
      }
      const hash = createHash(this.digest.algorithm);
      // Upstream chunks are hashed as they come and written in batches (see
      // WRITE_BATCH_BYTES); readers are told of each batch once it is written.
      let batch: Buffer[] = [];
      let batchBytes = 0;
      let batchDue: ReturnType<typeof deadline> | undefined;
      const writeBatch = async (): Promise<void> => {
        batchDue?.cancel();
        batchDue = undefined;
        if (batchBytes === 0) return;
        const chunks = batch;
        const n = batchBytes;
        batch = [];
        batchBytes = 0;
        if (fh) {
          try {
            await writeAll(fh, chunks, n, this.written);
            for (const c of chunks) this.#keepRecent(c);
          } catch (err) {
            if (!isNoSpace(err)) throw err;
            const dead = fh;
            fh = undefined;
            await dead.close().catch(() => undefined);
            // Whatever part of this batch reached the disk is ignored: readers use [0, diskEnd) only.
            await this.#startSpill();
          }
        }
        const sp = this.spill;
        if (sp) {
          sp.chunks.push(...chunks);
          sp.bytes += n;
        }
        this.written += n;
        this.emit("progress");
        noteUpstreamBytes(n);
        // Spilled: nothing decouples the upstream from the readers any more; keep the window bounded.
        while (this.spill && this.spill.bytes > SPILL_WINDOW_BYTES && this.readers.size > 0 && !body.destroyed) {
          await new Promise<void>((resolve) => {
            const wake = (): void => {
              this.off("consumed", wake);
              this.off("wake", wake);
              resolve();
            };
            this.on("consumed", wake);
            this.on("wake", wake);
          });
        }
        if (this.spill && this.readers.size === 0) {
          this.abandonedByTug = true;
          throw new RegistryError("UNAVAILABLE", "disk full and no client left to pass the blob through to");
        }
      };
      const chunks = bodyChunks(body);
      let next = pending(chunks.next());
      for (;;) {
        // With bytes waiting to be written, wait for the next chunk only until the batch is due.
        const r = batchDue ? await Promise.race([next, batchDue.due]) : await next;
        if (r === DUE) {
          await writeBatch();
          continue;
        }
        if (r.done) break;
        next = pending(chunks.next());
        const chunk = r.value;
        hash.update(chunk);
        if (this.expectedSize !== undefined && this.written + batchBytes + chunk.length > this.expectedSize) {
          throw new RegistryError("UNAVAILABLE", "upstream sent more bytes than its Content-Length", { status: 502, detail: { digest: this.digest.value } });
        }
        batchDue ??= deadline(WRITE_BATCH_MS);
        batch.push(chunk);
        batchBytes += chunk.length;
        // Spilled, every chunk goes to the readers at once: there is no write to save.
        if (batchBytes >= WRITE_BATCH_BYTES || batch.length >= WRITE_BATCH_CHUNKS || !fh) await writeBatch();
      }
      await writeBatch();
      if (fh) await fh.close();
      fh = undefined;
      if (this.expectedSize !== undefined && this.written !== this.expectedSize) {
        throw new RegistryError("UNAVAILABLE", "upstream body was cut short", { status: 502, detail: { digest: this.digest.value, expected: this.expectedSize, received: this.written } });
      }
      const hex = hash.digest("hex");
      if (hex !== this.digest.hex) {
        throw new RegistryError("UNAVAILABLE", "upstream sent bytes that do not match the digest", { status: 502, detail: { digest: this.digest.value, actual: `${this.digest.algorithm}:${hex}` } });
      }
      if (this.spill) {
        // Passed through, verified, not cached: the disk had no room for it.
        this.state = "done";
        this.emit("done");
        return;
      }
      await mkdir(dirname(this.finalPath), { recursive: true });
      await rename(this.tempPath, this.finalPath);
      this.cached = true;
      this.state = "done";
      this.emit("done");
    } catch (err) {
      body.destroy();
      if (fh) await fh.close().catch(() => undefined);
      await rm(this.tempPath, { force: true }).catch(() => undefined);
      this.error = err instanceof Error ? err : new Error(String(err));
      this.state = "failed";
      this.emit("failed", this.error);
    } finally {
      clearTimeout(timer);
      this.#body = undefined;
    }
  }
}

const READ_CHUNK = 1 << 20;

/** FillReaders alive in this process: past BIG_BUFFER_SENDS each new one reads in small chunks (bounded memory with hundreds of slow followers). */
let followers = 0;

/**
 * Streams bytes [start, end] of a blob being filled. Until the fill is verified
 * the last byte is held back, so a client never sees a complete, clean response
 * of bytes that later fail their digest.
 */
export class FillReader extends Readable {
  readonly #fill: BlobFill;
  #pos: number;
  readonly #end: number;
  #fh: FileHandle | undefined;
  #opening: Promise<FileHandle> | undefined;
  #pumping = false;
  #readAgain = false;

  readonly #chunk: number;

  constructor(fill: BlobFill, start: number, endInclusive: number) {
    const chunk = followers >= BIG_BUFFER_SENDS ? SMALL_FILE_CHUNK : READ_CHUNK;
    super({ highWaterMark: chunk });
    followers++;
    this.#chunk = chunk;
    this.#fill = fill;
    this.#pos = start;
    this.#end = endInclusive;
    // A spilled fill has dropped its temp file: only bytes still in its memory window can be served.
    if (fill.spill && start < fill.spill.chunkStart) this.#late = true;
    else fill.readers.add(this);
  }

  /** Joined a spilled fill too late to be served (the caller gets an error and retries). */
  readonly #late: boolean = false;

  /** Next byte offset this reader will send. */
  get position(): number {
    return this.#pos;
  }

  /** Opens the temp file now if this reader still needs its on-disk prefix (the fill is about to unlink it). */
  async holdFile(): Promise<void> {
    const sp = this.#fill.spill;
    if (!this.destroyed && sp && this.#pos < sp.diskEnd) await this.#open();
  }

  override _read(): void {
    if (this.#late) {
      this.destroy(new RegistryError("UNAVAILABLE", "the disk filled up before this download could follow the blob; retry"));
      return;
    }
    // Readable calls _read once and waits for a push. A call that lands while
    // a pump is finishing (a nextTick runs before the pump's promise settles)
    // must not be dropped, or the stream waits forever: remember it.
    if (this.#pumping) {
      this.#readAgain = true;
      return;
    }
    this.#pumping = true;
    this.#readAgain = false;
    this.#pump().then(
      () => {
        this.#pumping = false;
        if (this.#readAgain && !this.destroyed) this._read();
      },
      (err: unknown) => {
        this.#pumping = false;
        this.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  #open(): Promise<FileHandle> {
    if (this.#fh) return Promise.resolve(this.#fh);
    // One open at a time: the pump and holdFile() may ask together.
    this.#opening ??= this.#openFile().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  async #openFile(): Promise<FileHandle> {
    const fill = this.#fill;
    if (fill.state !== "done") {
      try {
        this.#fh = await open(fill.tempPath, "r");
        return this.#fh;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        // Renamed (done) or removed (failed) between the check and the open.
        if (fill.state === "running") {
          // Done or failed: either way the temp file is gone for good.
          await Promise.race([once(fill, "done"), once(fill, "failed")]).catch(() => undefined);
        }
      }
    }
    if (fill.state === "failed") throw fill.error ?? new Error("fill failed");
    this.#fh = await open(fill.finalPath, "r");
    return this.#fh;
  }

  async #pump(): Promise<void> {
    const fill = this.#fill;
    for (;;) {
      if (this.destroyed) return;
      if (fill.state === "failed") throw fill.error ?? new Error("fill failed");
      if (this.#pos > this.#end) {
        this.push(null);
        return;
      }
      const limit = fill.state === "done" ? fill.written : fill.written - 1;
      const upto = Math.min(limit, this.#end + 1);
      if (this.#pos < upto) {
        const sp = fill.spill;
        if (sp && this.#pos >= sp.diskEnd) {
          const view = fill.readSpilled(this.#pos, upto);
          if (!view) throw new RegistryError("UNAVAILABLE", "the disk filled up before this download could follow the blob; retry");
          this.#pos += view.length;
          fill.consumed();
          if (!this.push(view)) return;
          continue;
        }
        // At the head of the fill: the upstream's chunk itself, no file read.
        const recent = fill.readRecent(this.#pos, sp ? Math.min(upto, sp.diskEnd) : upto);
        if (recent) {
          this.#pos += recent.length;
          if (!this.push(recent)) return;
          continue;
        }
        const fh = await this.#open();
        const n = Math.min(this.#chunk, (sp ? Math.min(upto, sp.diskEnd) : upto) - this.#pos);
        // A pooled buffer: the response gives it back once its socket has the
        // bytes (http/send.ts), so following a fill allocates nothing per read.
        const pool = n > SMALL_FILE_CHUNK ? filePool : smallFilePool;
        const buf = pool.take();
        let bytesRead = 0;
        try {
          ({ bytesRead } = await fh.read(buf, 0, n, this.#pos));
        } finally {
          if (bytesRead === 0) pool.give(buf);
        }
        if (bytesRead === 0) throw new Error("blob file shorter than written");
        this.#pos += bytesRead;
        if (!this.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead))) return;
        continue;
      }
      if (fill.state === "done") {
        // Size shorter than the requested end: nothing more will come.
        this.push(null);
        return;
      }
      await nextFillEvent(fill, this);
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    followers--;
    this.#fill.readers.delete(this);
    this.#fill.consumed();
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh) fh.close().then(() => cb(err), () => cb(err));
    else cb(err);
  }
}
