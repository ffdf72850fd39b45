// Blobs on disk by digest, and the fills under way in this process. A blob is
// either committed (its file at Layout.blob, verified) or being filled (a
// BlobFill with a temp file that readers follow); nothing else is ever served.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.js";
import { BlobFill, FillReader } from "./blob-fill.js";
import type { Layout } from "./layout.js";

export interface CommittedBlob {
  readonly path: string;
  readonly size: number;
}

export class BlobStore {
  readonly #layout: Layout;
  readonly #fills = new Map<string, BlobFill>();

  constructor(layout: Layout) {
    this.#layout = layout;
  }

  async stat(d: Digest): Promise<CommittedBlob | undefined> {
    const path = this.#layout.blob(d);
    try {
      const st = await stat(path);
      return st.isFile() ? { path, size: st.size } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  /** Bytes [start, end] of a committed blob. */
  read(blob: CommittedBlob, start: number, endInclusive: number): Readable {
    return createReadStream(blob.path, { start, end: endInclusive, highWaterMark: 1 << 20 });
  }

  /** The fill under way for d in this process, if any. */
  fillFor(d: Digest): BlobFill | undefined {
    return this.#fills.get(d.value);
  }

  /** Registers and starts a fill of d from body; it outlives any client. */
  startFill(d: Digest, body: Readable, expectedSize: number | undefined, timeoutMs: number): BlobFill {
    const fill = new BlobFill(d, this.#layout.temp(`blob-${d.hex.slice(0, 12)}`), this.#layout.blob(d), expectedSize);
    this.#fills.set(d.value, fill);
    void fill.run(body, { timeoutMs }).finally(() => {
      if (this.#fills.get(d.value) === fill) this.#fills.delete(d.value);
    });
    return fill;
  }

  follow(fill: BlobFill, start: number, endInclusive: number): Readable {
    return new FillReader(fill, start, endInclusive);
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
