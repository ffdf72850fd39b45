// A fill writes its temp file in batches (WRITE_BATCH_BYTES / _CHUNKS / _MS)
// rather than one thread-pool write per upstream socket read: fewer
// hand-offs, fewer reader wake-ups (issue 7). Bytes never wait longer than
// WRITE_BATCH_MS, even when the upstream sends nothing more.
import { once } from "node:events";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BlobFill, WRITE_BATCH_BYTES, WRITE_BATCH_MS } from "../../src/cache/blob-fill.js";
import { digestOf } from "../../src/oci/digest.js";
import { pseudoRandomBytes } from "../helpers/images.js";
import { tempDir } from "../helpers/tug.js";

let root: string;
beforeEach(async () => {
  root = await tempDir("tug-batches-");
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function newFill(data: Buffer): BlobFill {
  return new BlobFill(digestOf(data), join(root, "tmp", "blob-x.tmp"), join(root, "blobs", "x"), data.length);
}

describe("a fill's writes", () => {
  it("go out in batches: 4 MiB sent in 64 KiB pieces all at once is a handful of writes, not 64", async () => {
    const data = pseudoRandomBytes(4 << 20, 3);
    const fill = newFill(data);
    const body = new PassThrough({ highWaterMark: 8 << 20 });
    const piece = 64 * 1024;
    for (let off = 0; off < data.length; off += piece) body.write(data.subarray(off, off + piece));
    body.end();
    const seen: number[] = [];
    fill.on("progress", () => seen.push(fill.written));
    await fill.run(body, { timeoutMs: 30_000 });
    expect(fill.state).toBe("done");
    expect((await readFile(fill.finalPath)).equals(data)).toBe(true);
    expect(seen.at(-1)).toBe(data.length);
    expect(seen.length).toBeLessThanOrEqual(data.length / WRITE_BATCH_BYTES + 1);
    for (let i = 1; i < seen.length - 1; i++) expect(seen[i]! - seen[i - 1]!).toBeGreaterThanOrEqual(WRITE_BATCH_BYTES);
  });

  it("never hold bytes past WRITE_BATCH_MS: a lone chunk reaches the file and the readers though nothing more comes", async () => {
    const data = pseudoRandomBytes(256 * 1024, 4);
    const fill = newFill(data);
    const body = new PassThrough();
    const run = fill.run(body, { timeoutMs: 30_000 });
    body.write(data.subarray(0, 1000));
    const bound = new Promise((_, reject) => setTimeout(() => reject(new Error("the chunk was never written")), 100 * WRITE_BATCH_MS).unref());
    await Promise.race([once(fill, "progress"), bound]);
    expect(fill.written).toBe(1000);
    expect((await readFile(fill.tempPath)).equals(data.subarray(0, 1000))).toBe(true);
    body.end(data.subarray(1000));
    await run;
    expect(fill.state).toBe("done");
  });
});
