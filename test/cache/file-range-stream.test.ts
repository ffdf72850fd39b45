// A committed blob file served straight into a Node response: exact bytes for
// any range, a few recycled buffers instead of one per chunk, a client that
// leaves stops the reading, a file shorter than promised cuts the connection.
import { createServer, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FileRangeStream } from "../../src/cache/file-range-stream.js";
import { FILE_CHUNK } from "../../src/cache/buffer-pool.js";
import { pseudoRandomBytes } from "../helpers/images.js";

let dir: string;
let file: string;
const data = pseudoRandomBytes(8 * FILE_CHUNK + 12345, 7);
let server: Server;
let url: string;
/** What each request's handler saw: the ArrayBuffers it wrote from, and the stream. */
let last: { buffers: Set<ArrayBufferLike>; writes: number; stream: FileRangeStream; res: ServerResponse } | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "tug-frs-"));
  file = join(dir, "blob");
  await writeFile(file, data);
  server = createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    const start = Number(u.searchParams.get("start") ?? 0);
    const end = Number(u.searchParams.get("end") ?? data.length - 1);
    const path = u.searchParams.get("path") ?? file;
    const stream = new FileRangeStream(path, start, end);
    const seen = { buffers: new Set<ArrayBufferLike>(), writes: 0, stream, res };
    const write = res.write.bind(res) as (chunk: Buffer, cb: () => void) => boolean;
    res.write = ((chunk: Buffer, cb: () => void) => {
      seen.buffers.add(chunk.buffer);
      seen.writes++;
      return write(chunk, cb);
    }) as typeof res.write;
    last = seen;
    res.writeHead(200, { "Content-Length": String(end - start + 1) });
    stream.sendTo(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

async function get(query: string): Promise<Buffer> {
  const res = await fetch(`${url}/?${query}`);
  return Buffer.from(await res.arrayBuffer());
}

describe("FileRangeStream.sendTo", () => {
  it("sends exactly the bytes of the range, whole file or across chunk boundaries", async () => {
    expect((await get("")).equals(data)).toBe(true);
    const s = FILE_CHUNK - 7;
    const e = 3 * FILE_CHUNK + 99;
    expect((await get(`start=${s}&end=${e}`)).equals(data.subarray(s, e + 1))).toBe(true);
    expect((await get("start=5&end=5")).equals(data.subarray(5, 6))).toBe(true);
  });

  it("writes a file of many chunks from at most two recycled buffers", async () => {
    await get("");
    expect(Math.ceil(data.length / FILE_CHUNK)).toBeGreaterThan(8);
    expect(last!.buffers.size).toBeLessThanOrEqual(2);
  });

  it("stops reading and closes the file when the client goes away", async () => {
    const big = join(dir, "big");
    await writeFile(big, pseudoRandomBytes(48 * FILE_CHUNK, 8));
    await new Promise<void>((resolve, reject) => {
      const req = request(`${url}/?path=${encodeURIComponent(big)}&start=0&end=${48 * FILE_CHUNK - 1}`, (res) => {
        res.once("data", () => req.destroy());
      });
      req.on("error", () => undefined);
      req.on("close", () => resolve());
      req.end();
      setTimeout(() => reject(new Error("no close")), 5000).unref();
    });
    const stream = last!.stream;
    if (!stream.destroyed) await new Promise((r) => stream.once("close", r));
    expect(stream.destroyed).toBe(true);
    expect(last!.res.writableFinished).toBe(false);
    // Far from all 48 chunks: the loop saw the response close and stopped.
    expect(last!.writes).toBeLessThan(24);
  });

  it("a file shorter than the range cuts the connection: never a clean end", async () => {
    const short = join(dir, "short");
    await writeFile(short, data.subarray(0, 1000));
    await expect(fetch(`${url}/?path=${encodeURIComponent(short)}&start=0&end=4999`).then((r) => r.arrayBuffer())).rejects.toThrow();
  });
});

describe("FileRangeStream as a Readable", () => {
  it("yields the bytes of the range", async () => {
    const chunks: Buffer[] = [];
    for await (const c of new FileRangeStream(file, 10, 2 * FILE_CHUNK + 10) as Readable) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(data.subarray(10, 2 * FILE_CHUNK + 11))).toBe(true);
  });

  it("errors on a missing file", async () => {
    const s = new FileRangeStream(join(dir, "nope"), 0, 10);
    await expect((async () => {
      for await (const _ of s) void _;
    })()).rejects.toThrow(/ENOENT/);
  });
});
