// The file-buffer pool: buffers come back only when handed back, views of
// them are recognised, foreign memory never enters, and no buffer can be
// handed out twice.
import { describe, expect, it } from "vitest";
import { BufferPool } from "../../src/cache/buffer-pool.js";

describe("BufferPool", () => {
  it("hands a given-back buffer out again instead of allocating", () => {
    const pool = new BufferPool(4096, 4);
    const a = pool.take();
    expect(a.length).toBe(4096);
    pool.give(a);
    expect(pool.take()).toBe(a);
  });

  it("recycle() takes back a view of one of its buffers, and ignores memory it did not allocate", () => {
    const pool = new BufferPool(4096, 4);
    const a = pool.take();
    pool.recycle(a.subarray(100, 200));
    expect(pool.free).toBe(1);
    expect(pool.take()).toBe(a);
    pool.recycle(Buffer.alloc(4096));
    pool.recycle(Buffer.allocUnsafe(64)); // a slice of Node's shared 8 KiB pool
    expect(pool.free).toBe(0);
  });

  it("a buffer given back twice is still handed out once", () => {
    const pool = new BufferPool(4096, 4);
    const a = pool.take();
    pool.give(a);
    pool.recycle(a);
    expect(pool.free).toBe(1);
    const x = pool.take();
    const y = pool.take();
    expect(x).not.toBe(y);
  });

  it("keeps at most max free buffers", () => {
    const pool = new BufferPool(1024, 2);
    const bufs = [pool.take(), pool.take(), pool.take()];
    for (const b of bufs) pool.give(b);
    expect(pool.free).toBe(2);
  });
});
