// bodyChunks hands a fill the upstream's chunks as they were pushed, where
// `for await` over a paused Readable concatenates whatever is buffered into a
// new Buffer per read (issue 7: a second copy of every cold blob, and the dead
// copies were most of the cold pull's peak memory). Also: backpressure, end,
// errors, early exit.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bodyChunks } from "../../src/cache/body-chunks.js";

/** A Readable fed by hand (push), with the given buffer limit. */
function manual(highWaterMark = 16 * 1024): Readable {
  return new Readable({ highWaterMark, read() {} });
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("bodyChunks", () => {
  /** Pushes pushed[0], then the rest (and the end) while the consumer holds its first chunk; returns what it was handed. */
  async function slowlyConsumed(pushed: Buffer[], iterate: (body: Readable) => AsyncIterable<Buffer>): Promise<Buffer[]> {
    const body = manual(1 << 20);
    body.push(pushed[0]);
    const got: Buffer[] = [];
    for await (const chunk of iterate(body)) {
      got.push(chunk);
      if (got.length === 1) {
        for (const c of pushed.slice(1)) body.push(c);
        body.push(null);
      }
      await turn();
    }
    return got;
  }

  it("yields each pushed buffer itself, never a concatenation, across a slow consumer", async () => {
    const pushed = Array.from({ length: 8 }, (_, i) => Buffer.alloc(4096, i));
    const got = await slowlyConsumed(pushed, bodyChunks);
    expect(got.length).toBe(pushed.length);
    got.forEach((c, i) => expect(c).toBe(pushed[i]));
    // What `for await` on the Readable itself does with the same pushes: fewer, merged, copied chunks.
    const merged = await slowlyConsumed(pushed, (b) => b as AsyncIterable<Buffer>);
    expect(merged.length).toBeLessThan(pushed.length);
  });

  it("keeps the body paused while the consumer holds a chunk (backpressure)", async () => {
    const body = manual(8 * 1024);
    const it = bodyChunks(body)[Symbol.asyncIterator]();
    body.push(Buffer.alloc(1024));
    const first = await it.next();
    expect(first.done).toBe(false);
    // The consumer is busy with the first chunk: further data queues in the
    // Readable until its limit, and push() asks the producer to stop.
    body.push(Buffer.alloc(1024));
    await turn();
    let accepted = true;
    for (let i = 0; i < 16 && accepted; i++) accepted = body.push(Buffer.alloc(1024));
    expect(accepted).toBe(false);
    body.push(null);
    let rest = 0;
    for (let r = await it.next(); !r.done; r = await it.next()) rest += r.value.length;
    expect(rest).toBeGreaterThanOrEqual(8 * 1024);
  });

  it("ends at once for a body that already ended, and throws a body's error", async () => {
    const ended = manual();
    ended.push(null);
    ended.resume();
    await once(ended, "end");
    const none: Buffer[] = [];
    for await (const c of bodyChunks(ended)) none.push(c);
    expect(none).toEqual([]);

    const failing = manual();
    failing.push(Buffer.from("abc"));
    const consume = (async () => {
      const got: string[] = [];
      for await (const c of bodyChunks(failing)) {
        got.push(c.toString());
        failing.destroy(new Error("upstream reset"));
      }
      return got;
    })();
    await expect(consume).rejects.toThrow("upstream reset");
  });

  it("a body closed before its end is an error, not a short success", async () => {
    const body = manual();
    body.push(Buffer.from("partial"));
    const consume = (async () => {
      for await (const _ of bodyChunks(body)) body.destroy();
    })();
    await expect(consume).rejects.toMatchObject({ code: "ERR_STREAM_PREMATURE_CLOSE" });
  });

  it("leaving early destroys the body", async () => {
    const body = manual();
    body.push(Buffer.from("a"));
    body.push(Buffer.from("b"));
    for await (const _ of bodyChunks(body)) break;
    expect(body.destroyed).toBe(true);
  });
});

describe("bodyChunks on an undici response body", () => {
  const SIZE = 16 << 20;
  let server: Server;
  let origin: string;
  const agent = new Agent();
  beforeAll(async () => {
    const block = Buffer.alloc(256 * 1024, 7);
    server = createServer((_req, res) => {
      res.writeHead(200, { "content-length": String(SIZE) });
      let sent = 0;
      const more = (): void => {
        while (sent < SIZE) {
          sent += block.length;
          if (!res.write(block)) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await agent.close();
    server.close();
  });

  /**
   * Iterates a response body like a fill does (a turn of the event loop per
   * chunk, as for a file write); counts the chunks and how many of them are
   * buffers undici itself pushed into the body (rather than copies).
   */
  async function consume(iterate: (body: Readable) => AsyncIterable<Buffer>): Promise<{ chunks: number; asPushed: number; bytes: number }> {
    const res = await request(origin, { dispatcher: agent });
    const pushed = new WeakSet<object>();
    const push = res.body.push.bind(res.body);
    res.body.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
      if (chunk !== null && typeof chunk === "object") pushed.add(chunk);
      return push(chunk, encoding);
    };
    let chunks = 0;
    let asPushed = 0;
    let bytes = 0;
    for await (const chunk of iterate(res.body)) {
      chunks++;
      bytes += chunk.length;
      if (pushed.has(chunk)) asPushed++;
      await turn();
      await turn();
    }
    return { chunks, asPushed, bytes };
  }

  it("hands over the buffers undici pushed; plain iteration hands over merged copies", async () => {
    const ours = await consume(bodyChunks);
    expect(ours.bytes).toBe(SIZE);
    // All but the data undici pushed before request() resolved (before push was watched).
    expect(ours.asPushed).toBeGreaterThanOrEqual(ours.chunks - 1);
    const plain = await consume((b) => b as AsyncIterable<Buffer>);
    expect(plain.bytes).toBe(SIZE);
    expect(plain.asPushed).toBeLessThan(plain.chunks);
    expect(plain.chunks).toBeLessThan(ours.chunks);
  });
});
