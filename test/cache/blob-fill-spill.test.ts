// A fill whose disk fills up mid-way (ENOSPC injected into the temp file's
// writes): it keeps going for the readers it has, from a bounded memory window
// paced by the slowest reader; both readers get every byte, verified; nothing
// is cached or left behind. (The same path on a real full filesystem:
// test/integration/disk-full.test.ts.)
import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { PassThrough, type Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseDigest } from "../../src/oci/digest.js";
import { waitUntil } from "../helpers/process.js";
import { tempDir } from "../helpers/tug.js";

const DISK_LIMIT = 1 << 20;

// The temp file's handle fails with ENOSPC once DISK_LIMIT bytes are in it.
vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  return {
    ...real,
    open: async (...args: Parameters<typeof real.open>) => {
      const fh = await real.open(...args);
      if (!String(args[0]).includes("blob-") || args[1] !== "wx") return fh;
      let total = 0;
      const write = fh.write.bind(fh) as (...a: unknown[]) => Promise<{ bytesWritten: number }>;
      const writev = fh.writev.bind(fh) as (...a: unknown[]) => Promise<{ bytesWritten: number }>;
      const room = (len: number): void => {
        if (total + len > DISK_LIMIT) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
        total += len;
      };
      return new Proxy(fh, {
        get(target, prop, receiver) {
          if (prop === "write") {
            return async (buf: Buffer, off: number, len: number, pos: number) => {
              room(len);
              return write(buf, off, len, pos);
            };
          }
          if (prop === "writev") {
            return async (bufs: Buffer[], pos: number) => {
              room(bufs.reduce((n, b) => n + b.length, 0));
              return writev(bufs, pos);
            };
          }
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
});

const { BlobStore } = await import("../../src/cache/blob-store.js");
const { SPILL_WINDOW_BYTES } = await import("../../src/cache/blob-fill.js");
const { Layout } = await import("../../src/cache/layout.js");

let root: string;
beforeEach(async () => {
  root = await tempDir("tug-spill-");
});
afterEach(async () => {
  const { rm } = await import("node:fs/promises");
  await rm(root, { recursive: true, force: true });
});

function hashOf(chunks: Buffer[]): string {
  const h = createHash("sha256");
  for (const c of chunks) h.update(c);
  return h.digest("hex");
}

describe("BlobFill on a full disk", () => {
  it("passes the rest through from a memory window paced by the slowest reader; both readers get every byte", async () => {
    const blob = randomBytes(32 << 20);
    const digest = parseDigest("sha256:" + createHash("sha256").update(blob).digest("hex"));
    const layout = new Layout(root);
    let noSpace = 0;
    const budget = {
      touch: () => undefined,
      pin: () => () => undefined,
      isEvicting: () => false,
      forget: () => undefined,
      added: () => undefined,
      reserve: () => () => undefined,
      noSpace: () => void noSpace++,
    };
    const store = new BlobStore(layout, budget);
    const upstream = new PassThrough({ highWaterMark: 64 << 10 });
    const fill = store.startFill(digest, upstream, blob.length, 60_000);
    const fast = store.follow(fill, 0, blob.length - 1);
    const slow = store.follow(fill, 0, blob.length - 1);
    let maxWindow = 0;
    fill.on("progress", () => (maxWindow = Math.max(maxWindow, fill.spill?.bytes ?? 0)));
    // The upstream body, in 256 KiB chunks, as fast as the fill takes it.
    void (async () => {
      for (let off = 0; off < blob.length; off += 256 << 10) {
        if (!upstream.write(blob.subarray(off, off + (256 << 10)))) await new Promise((r) => upstream.once("drain", r));
      }
      upstream.end();
    })();
    const collect = (r: Readable): { chunks: Buffer[]; done: Promise<void>; bytes: () => number } => {
      const chunks: Buffer[] = [];
      let n = 0;
      const done = new Promise<void>((resolve, reject) => {
        r.on("data", (c: Buffer) => {
          chunks.push(c);
          n += c.length;
        });
        r.once("end", resolve);
        r.once("error", reject);
      });
      return { chunks, done, bytes: () => n };
    };
    const a = collect(fast);
    slow.pause();
    // The slow reader reads nothing: the fill spills, fills its window, and waits.
    await waitUntil("fill paced by the slow reader", () => fill.spill !== undefined && fill.spill.bytes > SPILL_WINDOW_BYTES && fill.listenerCount("consumed") > 0, { timeoutMs: 10_000 });
    expect(noSpace).toBe(1);
    expect(store.fillFor(digest)).toBeUndefined(); // new requests start afresh
    // One that got hold of the fill anyway, too late for its dropped bytes, fails at once instead of stalling everyone.
    const late = store.follow(fill, 0, blob.length - 1);
    await expect(new Promise((resolve, reject) => late.once("error", reject).resume())).rejects.toThrow(/disk filled up/);
    expect(fill.written).toBeLessThan(blob.length);
    expect(a.bytes()).toBeLessThan(blob.length);
    // Now the slow one reads too: everything flows to the end.
    const b = collect(slow);
    slow.resume();
    await Promise.all([a.done, b.done, fill.finished]);
    expect(hashOf(a.chunks)).toBe(digest.hex);
    expect(hashOf(b.chunks)).toBe(digest.hex);
    expect(a.bytes()).toBe(blob.length);
    expect(b.bytes()).toBe(blob.length);
    expect(fill.cached).toBe(false);
    expect(maxWindow).toBeLessThanOrEqual(SPILL_WINDOW_BYTES + (256 << 10));
    expect(await readdir(layout.tmpDir).catch(() => [])).toEqual([]);
    expect(await store.stat(digest)).toBeUndefined();
  });

  it("gives up (nothing cached, not the upstream's fault) when no reader is left to pass through to", async () => {
    const blob = randomBytes(4 << 20);
    const digest = parseDigest("sha256:" + createHash("sha256").update(blob).digest("hex"));
    const store = new BlobStore(new Layout(root));
    const upstream = new PassThrough();
    const fill = store.startFill(digest, upstream, blob.length, 60_000);
    upstream.end(blob);
    await expect(fill.finished).rejects.toThrow(/no client left/);
    expect(fill.abandonedByTug).toBe(true);
    expect(await readdir(new Layout(root).tmpDir)).toEqual([]);
  });
});
