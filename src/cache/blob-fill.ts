// One upstream body written to a temp file, hashed while it is written, and
// renamed into place only when its digest and size match. Every client of the
// blob — the one that caused the fetch and any that arrive later — reads the
// growing file through a FillReader, so a slow or departed client never slows
// or stops the fill (PROTOCOL.md lessons 1, 2, 4).
import { EventEmitter, once } from "node:events";
import { createHash } from "node:crypto";
import { mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable } from "node:stream";
import type { Digest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";

export type FillState = "running" | "done" | "failed";

export class BlobFill extends EventEmitter {
  readonly digest: Digest;
  readonly tempPath: string;
  readonly finalPath: string;
  /** Expected size from the upstream's Content-Length, when it sent one. */
  readonly expectedSize: number | undefined;
  written = 0;
  state: FillState = "running";
  error: Error | undefined;
  /** Settles when the fill is committed (resolves) or abandoned (rejects). */
  readonly finished: Promise<void>;

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
    this.#body?.destroy(new RegistryError("UNAVAILABLE", reason));
  }

  /** Pumps body into the temp file. Resolves when the fill has settled either way. */
  async run(body: Readable, opts: { timeoutMs: number }): Promise<void> {
    this.#body = body;
    let fh: FileHandle | undefined;
    const timer = setTimeout(() => body.destroy(new RegistryError("UNAVAILABLE", "blob fill exceeded its time limit", { status: 504 })), opts.timeoutMs);
    timer.unref();
    try {
      await mkdir(dirname(this.tempPath), { recursive: true });
      fh = await open(this.tempPath, "wx");
      const hash = createHash(this.digest.algorithm);
      for await (const chunk of body as AsyncIterable<Buffer>) {
        hash.update(chunk);
        let off = 0;
        while (off < chunk.length) {
          const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, this.written + off);
          off += bytesWritten;
        }
        this.written += chunk.length;
        if (this.expectedSize !== undefined && this.written > this.expectedSize) {
          throw new RegistryError("UNAVAILABLE", "upstream sent more bytes than its Content-Length", { status: 502, detail: { digest: this.digest.value } });
        }
        this.emit("progress");
      }
      await fh.close();
      fh = undefined;
      if (this.expectedSize !== undefined && this.written !== this.expectedSize) {
        throw new RegistryError("UNAVAILABLE", "upstream body was cut short", { status: 502, detail: { digest: this.digest.value, expected: this.expectedSize, received: this.written } });
      }
      const hex = hash.digest("hex");
      if (hex !== this.digest.hex) {
        throw new RegistryError("UNAVAILABLE", "upstream sent bytes that do not match the digest", { status: 502, detail: { digest: this.digest.value, actual: `${this.digest.algorithm}:${hex}` } });
      }
      await mkdir(dirname(this.finalPath), { recursive: true });
      await rename(this.tempPath, this.finalPath);
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
  #pumping = false;

  constructor(fill: BlobFill, start: number, endInclusive: number) {
    super({ highWaterMark: READ_CHUNK });
    this.#fill = fill;
    this.#pos = start;
    this.#end = endInclusive;
  }

  override _read(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    this.#pump().then(
      () => {
        this.#pumping = false;
      },
      (err: unknown) => {
        this.#pumping = false;
        this.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  async #open(): Promise<FileHandle> {
    if (this.#fh) return this.#fh;
    const fill = this.#fill;
    if (fill.state !== "done") {
      try {
        this.#fh = await open(fill.tempPath, "r");
        return this.#fh;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        // Renamed (done) or removed (failed) between the check and the open.
        if (fill.state === "running") await once(fill, "done").catch(() => undefined);
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
        const fh = await this.#open();
        const n = Math.min(READ_CHUNK, upto - this.#pos);
        const buf = Buffer.allocUnsafe(n);
        const { bytesRead } = await fh.read(buf, 0, n, this.#pos);
        if (bytesRead === 0) throw new Error("blob file shorter than written");
        this.#pos += bytesRead;
        if (!this.push(bytesRead === n ? buf : buf.subarray(0, bytesRead))) return;
        continue;
      }
      if (fill.state === "done") {
        // Size shorter than the requested end: nothing more will come.
        this.push(null);
        return;
      }
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          fill.off("progress", wake);
          fill.off("done", wake);
          fill.off("failed", wake);
          this.off("close", wake);
          resolve();
        };
        fill.on("progress", wake);
        fill.on("done", wake);
        fill.on("failed", wake);
        this.on("close", wake);
      });
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh) fh.close().then(() => cb(err), () => cb(err));
    else cb(err);
  }
}
