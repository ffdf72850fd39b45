// Blobs on disk by digest, and the fills under way in this process. A blob is
// either committed (its file at Layout.blob, verified) or being filled (a
// BlobFill with a temp file that readers follow); nothing else is ever served.
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.js";
import { BlobFill, FillReader } from "./blob-fill.js";
import { FileRangeStream } from "./file-range-stream.js";
import type { Layout } from "./layout.js";
import type { DiskBudget } from "./evictor.js";

export interface CommittedBlob {
  readonly path: string;
  readonly size: number;
}

export class BlobStore {
  readonly #layout: Layout;
  readonly #fills = new Map<string, BlobFill>();
  readonly #budget: DiskBudget | undefined;

  constructor(layout: Layout, budget?: DiskBudget) {
    this.#layout = layout;
    this.#budget = budget;
  }

  async stat(d: Digest): Promise<CommittedBlob | undefined> {
    const path = this.#layout.blob(d);
    const budget = this.#budget;
    // Being evicted right now: a miss (refetched), never a file that vanishes mid-response.
    if (budget?.isEvicting(path)) return undefined;
    budget?.touch(path);
    // Pinned from before the stat until just after the caller resumes, so the
    // evictor cannot remove the file between this answer and the caller's read() pin.
    const unpin = budget?.pin(path);
    try {
      const st = await stat(path);
      return st.isFile() ? { path, size: st.size } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        budget?.forget(path);
        return undefined;
      }
      throw err;
    } finally {
      if (unpin) setImmediate(unpin);
    }
  }

  /** Bytes [start, end] of a committed blob. */
  read(blob: CommittedBlob, start: number, endInclusive: number): Readable {
    // Served by sendTo (file → pooled buffer → socket) under Node; a plain Readable elsewhere.
    const stream = new FileRangeStream(blob.path, start, endInclusive);
    const unpin = this.#budget?.pin(blob.path);
    if (unpin) stream.once("close", unpin);
    return stream;
  }

  /** The fill under way for d in this process, if any. */
  fillFor(d: Digest): BlobFill | undefined {
    return this.#fills.get(d.value);
  }

  /** Registers and starts a fill of d from body; it outlives any client. */
  startFill(d: Digest, body: Readable, expectedSize: number | undefined, timeoutMs: number): BlobFill {
    const fill = new BlobFill(d, this.#layout.temp(`blob-${d.hex.slice(0, 12)}`), this.#layout.blob(d), expectedSize);
    this.#fills.set(d.value, fill);
    const budget = this.#budget;
    const unreserve = budget?.reserve(expectedSize ?? 0);
    fill.onSpill = (f) => {
      // Disk full: later requests start afresh (room is being made) instead of joining a pass-through.
      if (this.#fills.get(d.value) === f) this.#fills.delete(d.value);
      budget?.noSpace(Math.max(f.expectedSize ?? 0, f.written) + (1 << 20));
    };
    void fill.run(body, { timeoutMs }).finally(() => {
      if (this.#fills.get(d.value) === fill) this.#fills.delete(d.value);
      unreserve?.();
      if (fill.cached) budget?.added(fill.finalPath, "blob", fill.written);
    });
    return fill;
  }

  follow(fill: BlobFill, start: number, endInclusive: number): Readable {
    const reader = new FillReader(fill, start, endInclusive);
    const unpin = this.#budget?.pin(fill.finalPath);
    if (unpin) reader.once("close", unpin);
    return reader;
  }

  /**
   * For shutdown: lets fills under way finish for up to graceMs, then abandons
   * the rest cleanly (temp files removed, readers cut off).
   */
  async drain(graceMs: number): Promise<void> {
    const fills = [...this.#fills.values()];
    if (fills.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    const settled = (f: BlobFill): Promise<void> => f.finished.catch(() => undefined);
    await Promise.race([Promise.all(fills.map(settled)), deadline]);
    clearTimeout(timer);
    for (const f of fills) if (f.state === "running") f.abort("tug is shutting down");
    await Promise.all(fills.map(settled));
  }

  get fillsInFlight(): number {
    return this.#fills.size;
  }
}
