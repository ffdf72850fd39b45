// Resuming a gone replica's download: the reused bytes come first, then the
// upstream's rest (206), or its whole body with the reused part checked and
// dropped (an upstream that ignores Range); anything inconsistent is an error,
// never bytes that would be hashed as the blob.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openResumePoint } from "../../src/cache/resume-point.js";
import { RegistryError } from "../../src/oci/errors.js";
import { makeTempDir, removeTempDir } from "../helpers/process.js";

const blob = randomBytes(3 << 20);
const offset = 1_234_567;
let dir: string;
let partial: string;

beforeAll(async () => {
  dir = makeTempDir("resume");
  partial = join(dir, "partial");
  await writeFile(partial, blob.subarray(0, offset));
});
afterAll(async () => {
  await removeTempDir(dir);
});

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** An upstream body in 100 KiB pieces. */
const body = (b: Buffer): Readable => Readable.from(Array.from({ length: Math.ceil(b.length / 102_400) }, (_, i) => b.subarray(i * 102_400, (i + 1) * 102_400)));

describe("ResumePoint", () => {
  it("offers the partial file's size as the offset; none for a missing or empty file", async () => {
    const p = (await openResumePoint(partial))!;
    expect(p.offset).toBe(offset);
    await p.close();
    expect(await openResumePoint(join(dir, "missing"))).toBeUndefined();
    await writeFile(join(dir, "empty"), "");
    expect(await openResumePoint(join(dir, "empty"))).toBeUndefined();
  });

  it("206: the reused bytes, then the upstream's rest; the total from Content-Range", async () => {
    const p = (await openResumePoint(partial))!;
    const r = p.body({ status: 206, headers: { "content-range": `bytes ${offset}-${blob.length - 1}/${blob.length}` }, body: body(blob.subarray(offset)) });
    expect(r.expectedSize).toBe(blob.length);
    expect((await collect(r.body)).equals(blob)).toBe(true);
  });

  it("200 (Range ignored): the upstream's first bytes are checked against the reused ones and dropped", async () => {
    const p = (await openResumePoint(partial))!;
    const r = p.body({ status: 200, headers: { "content-length": String(blob.length) }, body: body(blob) });
    expect(r.expectedSize).toBe(blob.length);
    expect((await collect(r.body)).equals(blob)).toBe(true);
  });

  it("200 whose first bytes differ from the reused ones: an error, not a spliced blob", async () => {
    const p = (await openResumePoint(partial))!;
    const other = Buffer.from(blob);
    other[offset - 1] = other[offset - 1]! ^ 1;
    const r = p.body({ status: 200, headers: { "content-length": String(blob.length) }, body: body(other) });
    await expect(collect(r.body)).rejects.toThrow(/differ from the part fetched before/);
  });

  it("206 for another range than asked: refused", async () => {
    const p = (await openResumePoint(partial))!;
    expect(() => p.body({ status: 206, headers: { "content-range": `bytes 0-${blob.length - 1}/${blob.length}` }, body: body(blob) })).toThrow(RegistryError);
    await p.close();
  });
});
