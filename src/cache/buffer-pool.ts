// Reusable read buffers for serving files. Allocating a fresh 1 MiB buffer per
// read made V8 count ~1 GiB/s of external memory and run a full mark-compact
// every ~64 MiB served (bench profile: 37 major GCs a second, half the CPU);
// recycling a few buffers once the socket has taken their bytes removes that.

export class BufferPool {
  readonly size: number;
  readonly #max: number;
  readonly #free: Buffer[] = [];
  /** The buffer that owns each ArrayBuffer this pool allocated: recycle() takes back views of them only. */
  readonly #owner = new WeakMap<ArrayBufferLike, Buffer>();
  readonly #isFree = new WeakSet<Buffer>();

  /** size: bytes per buffer; max: free buffers kept (more in use are allowed, just not kept). */
  constructor(size: number, max: number) {
    this.size = size;
    this.#max = max;
  }

  take(): Buffer {
    const free = this.#free.pop();
    if (free) {
      this.#isFree.delete(free);
      return free;
    }
    // Unpooled: each buffer owns its memory, so handing one back never aliases another.
    const buf = Buffer.allocUnsafeSlow(this.size);
    this.#owner.set(buf.buffer, buf);
    return buf;
  }

  /** Only once nothing (a socket write included) still reads from buf. */
  give(buf: Buffer): void {
    // A buffer given back twice would be handed out twice: the one fatal mistake a pool can make.
    if (buf.length !== this.size || this.#free.length >= this.#max || this.#isFree.has(buf)) return;
    this.#isFree.add(buf);
    this.#free.push(buf);
  }

  /**
   * Takes back the buffer behind chunk (a whole pool buffer or a view into
   * one) once its bytes are written; chunks from anywhere else are ignored.
   */
  recycle(chunk: Uint8Array): void {
    const owner = this.#owner.get(chunk.buffer);
    if (owner) this.give(owner);
  }

  get free(): number {
    return this.#free.length;
  }
}

/** Chunk of a file read per system call on the blob paths. */
export const FILE_CHUNK = 1 << 20;

/** Shared by every response that streams a file: up to 32 MiB kept between bursts. */
export const filePool = new BufferPool(FILE_CHUNK, 32);

/**
 * Smaller buffers for when many responses stream at once: each response holds
 * up to two buffers until its socket takes them, so with hundreds of slow
 * clients 1 MiB buffers would cost ~2 MiB per client; these cap it at 128 KiB.
 */
export const SMALL_FILE_CHUNK = 64 << 10;
export const smallFilePool = new BufferPool(SMALL_FILE_CHUNK, 256);

/** Gives chunk back to whichever file pool it came from, if any (see http/send.ts). */
export function recycleFileChunk(chunk: Uint8Array): void {
  filePool.recycle(chunk);
  smallFilePool.recycle(chunk);
}

/** Concurrent file responses above which new reads use smallFilePool (memory stays bounded under 500 slow clients). */
export const BIG_BUFFER_SENDS = 32;
