// Taking over the fill of a replica that died mid-download: the bytes it had
// written stay useful. The new holder reads them back from the dead replica's
// temp file (hashing them again, as part of its own fill) and asks the
// upstream only for the rest with a Range request. An upstream that ignores
// Range sends the whole blob: its first bytes are checked against the reused
// ones and dropped, so the fill's hash still covers exactly what is written.
import { open, type FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import { RegistryError } from "../oci/errors.js";
import { bodyChunks } from "./body-chunks.js";

const CHUNK = 1 << 20;

export interface UpstreamBody {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Readable;
}

export interface ResumePoint {
  /** Bytes reused from the earlier holder's file; the upstream is asked for `bytes=<offset>-`. */
  readonly offset: number;
  /** The fill's body: the reused bytes, then the upstream's (206, or 200 with the reused part checked and dropped). */
  body(res: UpstreamBody): { body: Readable; expectedSize: number | undefined };
  close(): Promise<void>;
}

/**
 * Opens an earlier holder's temp file to resume from; undefined when it is
 * gone or empty. A holder that gave up (shutdown) removed its file, but a
 * follower may still hold it open: `takeHandle` hands that handle over (the
 * resume point then owns it).
 */
export async function openResumePoint(path: string, takeHandle?: () => FileHandle | undefined): Promise<ResumePoint | undefined> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, "r");
  } catch {
    fh = takeHandle?.();
  }
  if (!fh) return undefined;
  // Sizes only grow and a dead writer writes no more: what is there now is final and in order.
  const { size } = await fh.stat();
  if (size === 0) {
    await fh.close();
    return undefined;
  }
  return new FileResumePoint(fh, size);
}

function header(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

class FileResumePoint implements ResumePoint {
  readonly offset: number;
  readonly #fh: FileHandle;
  #closed = false;

  constructor(fh: FileHandle, offset: number) {
    this.#fh = fh;
    this.offset = offset;
  }

  body(res: UpstreamBody): { body: Readable; expectedSize: number | undefined } {
    let expectedSize: number | undefined;
    let skip: boolean;
    if (res.status === 206) {
      // RFC 9110 §14.4: Content-Range: bytes first-last/complete
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header(res.headers["content-range"]) ?? "");
      if (!m || Number(m[1]) !== this.offset) {
        res.body.destroy();
        throw new RegistryError("UNAVAILABLE", "upstream answered a resumed blob download with the wrong range", {
          status: 502,
          detail: { asked: `bytes=${this.offset}-`, got: header(res.headers["content-range"]) ?? null },
        });
      }
      expectedSize = m[3] === "*" ? Number(m[2]) + 1 : Number(m[3]);
      skip = false;
    } else {
      const len = header(res.headers["content-length"]);
      expectedSize = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
      skip = true;
    }
    const upstream = res.body;
    const out = Readable.from(this.#join(upstream, skip), { objectMode: false, highWaterMark: CHUNK });
    // A fill that aborts destroys its body: let go of the upstream at once.
    out.once("close", () => upstream.destroy());
    return { body: out, expectedSize };
  }

  async *#join(upstream: Readable, skip: boolean): AsyncGenerator<Buffer> {
    try {
      for (let pos = 0; pos < this.offset; ) {
        const buf = await this.#read(pos, Math.min(CHUNK, this.offset - pos));
        pos += buf.length;
        yield buf;
      }
      let compared = 0;
      for await (const chunk of bodyChunks(upstream)) {
        let rest = chunk;
        if (skip && compared < this.offset) {
          const n = Math.min(rest.length, this.offset - compared);
          const reused = await this.#read(compared, n);
          if (!reused.equals(rest.subarray(0, n))) {
            throw new RegistryError("UNAVAILABLE", "upstream sent bytes that differ from the part fetched before", { status: 502 });
          }
          compared += n;
          rest = rest.subarray(n);
          if (rest.length === 0) continue;
        }
        yield rest;
      }
    } finally {
      upstream.destroy();
      await this.close();
    }
  }

  async #read(pos: number, n: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await this.#fh.read(buf, got, n - got, pos + got);
      if (bytesRead === 0) throw new RegistryError("UNAVAILABLE", "the partial blob to resume from shrank", { status: 502 });
      got += bytesRead;
    }
    return buf;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close().catch(() => undefined);
  }
}
