// Readers at the head of a fill are fed the upstream's chunks from memory
// (no file read per chunk per follower); a reader further behind than the
// window reads the temp file. Shown by changing the temp file's bytes under
// the fill: what comes from memory is unaffected, what comes from the file is.
import { once } from "node:events";
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BlobFill, FillReader, RECENT_WINDOW_BYTES } from "../../src/cache/blob-fill.js";
import { digestOf } from "../../src/oci/digest.js";
import { pseudoRandomBytes } from "../helpers/images.js";
import { tempDir } from "../helpers/tug.js";

let root: string;
beforeEach(async () => {
  root = await tempDir("tug-recent-");
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Starts a fill of data fed by hand; resolves once `upto` bytes are written to the temp file. */
async function fillUpTo(data: Buffer, chunk: number, upto: number): Promise<{ fill: BlobFill; body: PassThrough; run: Promise<void>; fed: number }> {
  const fill = new BlobFill(digestOf(data), join(root, "tmp", "blob-x.tmp"), join(root, "blobs", "x"), data.length);
  const body = new PassThrough({ highWaterMark: chunk });
  const run = fill.run(body, { timeoutMs: 30_000 });
  let fed = 0;
  while (fed < upto) {
    body.write(data.subarray(fed, fed + chunk));
    fed += chunk;
    while (fill.written < fed) await once(fill, "progress");
  }
  return { fill, body, run, fed };
}

async function scribbleOnTempFile(fill: BlobFill, at: number, n: number): Promise<void> {
  const fh = await open(fill.tempPath, "r+");
  await fh.write(Buffer.alloc(n, 0xee), 0, n, at);
  await fh.close();
}

describe("a fill's recent window", () => {
  it("a reader at the head gets the upstream's bytes from memory, not from the file", async () => {
    const data = pseudoRandomBytes(512 * 1024, 1);
    const { fill, body, run, fed } = await fillUpTo(data, 64 * 1024, 256 * 1024);
    await scribbleOnTempFile(fill, 0, 1000);
    const reader = new FillReader(fill, 0, data.length - 1);
    const got = readAll(reader);
    body.end(data.subarray(fed));
    await run;
    expect((await got).equals(data)).toBe(true);
  });

  it("is bounded: a reader further behind reads the temp file", async () => {
    const data = pseudoRandomBytes(RECENT_WINDOW_BYTES + 2 * 1024 * 1024, 2);
    const { fill, body, run, fed } = await fillUpTo(data, 256 * 1024, RECENT_WINDOW_BYTES + 1024 * 1024);
    expect(fill.readRecent(0, fill.written)).toBeUndefined();
    expect(fill.readRecent(fill.written - 1, fill.written)?.length).toBe(1);
    await scribbleOnTempFile(fill, 0, 1000);
    const reader = new FillReader(fill, 0, data.length - 1);
    const got = readAll(reader);
    body.end(data.subarray(fed));
    await run;
    const bytes = await got;
    expect(bytes.length).toBe(data.length);
    expect(bytes.subarray(0, 1000).every((b) => b === 0xee)).toBe(true);
    expect(bytes.subarray(1000).equals(data.subarray(1000))).toBe(true);
  });
});
