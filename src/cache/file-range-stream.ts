// Bytes [start, end] of a committed blob file. It is a Readable for any
// consumer (app.request() in tests turns it into a Web stream), and it can
// also write itself straight into a Node response (sendTo): file → pooled
// buffer → socket, no stream machinery and no per-chunk allocation in between.
import { close, open, read } from "node:fs";
import type { ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { BIG_BUFFER_SENDS, FILE_CHUNK, filePool, smallFilePool } from "./buffer-pool.js";

/** A body that can write itself into a Node response (see http/send.ts). */
export interface DirectBody {
  /** Writes the body and ends res; on failure destroys res (a cut connection, never a clean short answer). */
  sendTo(res: ServerResponse): void;
}

export function isDirectBody(body: unknown): body is DirectBody {
  return typeof (body as Partial<DirectBody> | undefined)?.sendTo === "function";
}

/** Buffers a response may have between the disk and the socket: one being read while one is written. */
const IN_FLIGHT = 2;

/** Responses in #send right now (picks the buffer size: see BIG_BUFFER_SENDS). */
let sending = 0;

function openFile(path: string): Promise<number> {
  return new Promise((resolve, reject) => open(path, "r", (err, fd) => (err ? reject(err) : resolve(fd))));
}

function readAt(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => read(fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

export class FileRangeStream extends Readable implements DirectBody {
  readonly path: string;
  #pos: number;
  /** Exclusive. */
  readonly #end: number;
  #fd: number | undefined;
  #opening: Promise<number> | undefined;

  constructor(path: string, start: number, endInclusive: number) {
    super({ highWaterMark: FILE_CHUNK });
    this.path = path;
    this.#pos = start;
    this.#end = endInclusive + 1;
  }

  #open(): Promise<number> {
    if (this.#fd !== undefined) return Promise.resolve(this.#fd);
    this.#opening ??= openFile(this.path).then((fd) => {
      if (this.destroyed) {
        close(fd, () => undefined);
        throw new Error("stream destroyed");
      }
      this.#fd = fd;
      return fd;
    });
    return this.#opening;
  }

  override _read(): void {
    const n = Math.min(FILE_CHUNK, this.#end - this.#pos);
    if (n <= 0) {
      this.push(null);
      return;
    }
    // The consumer keeps what it is given, so this path allocates per chunk.
    const buf = Buffer.allocUnsafe(n);
    this.#open()
      .then((fd) => readAt(fd, buf, n, this.#pos))
      .then(
        (got) => {
          if (got === 0) throw new Error(`${this.path} is shorter than expected`);
          this.#pos += got;
          this.push(got === n ? buf : buf.subarray(0, got));
        },
        (err: unknown) => this.destroy(err as Error),
      )
      .catch((err: unknown) => this.destroy(err as Error));
  }

  sendTo(res: ServerResponse): void {
    this.#send(res).then(
      () => {
        if (!res.destroyed) res.end();
        this.destroy();
      },
      (err: unknown) => {
        res.destroy(err as Error);
        this.destroy();
      },
    );
  }

  async #send(res: ServerResponse): Promise<void> {
    const fd = await this.#open();
    sending++;
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const onClose = (): void => wake?.();
    res.once("close", onClose);
    try {
      while (this.#pos < this.#end) {
        while (inFlight >= IN_FLIGHT && !res.destroyed) await new Promise<void>((resolve) => (wake = resolve));
        // The client went away: stop reading.
        if (res.destroyed) return;
        const pool = sending > BIG_BUFFER_SENDS ? smallFilePool : filePool;
        const buf = pool.take();
        const n = Math.min(buf.length, this.#end - this.#pos);
        let got: number;
        try {
          got = await readAt(fd, buf, n, this.#pos);
        } catch (err) {
          pool.give(buf);
          throw err;
        }
        if (got === 0) {
          pool.give(buf);
          throw new Error(`${this.path} is shorter than expected`);
        }
        this.#pos += got;
        inFlight++;
        // The socket may hold on to buf until this callback (a partial write
        // queues the rest without copying), so only then does it go back.
        res.write(got === buf.length ? buf : buf.subarray(0, got), () => {
          inFlight--;
          pool.give(buf);
          wake?.();
        });
      }
    } finally {
      sending--;
      res.off("close", onClose);
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd === undefined) {
      // An open under way closes its fd itself once it sees the stream destroyed.
      cb(err);
      return;
    }
    close(fd, () => cb(err));
  }
}
