// Streamed bodies written straight to the Node response: pooled chunks go back
// to their pool once the socket has them; a body that fails or stops early
// cuts the connection (never a clean end with missing bytes).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import type { Context } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { filePool } from "../../src/cache/buffer-pool.js";
import { sendStream } from "../../src/http/send.js";

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A server whose every response is sendStream(body()) with the given length. */
async function serve(body: () => Readable, length: number): Promise<string> {
  server = createServer((_req, res) => {
    sendStream({ env: { outgoing: res } } as unknown as Context, 200, { "Content-Length": String(length) }, body());
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

describe("sendStream under Node", () => {
  it("gives each pooled chunk back to its pool once written", async () => {
    const pushed: Buffer[] = [];
    const url = await serve(() => {
      let n = 0;
      return new Readable({
        read() {
          if (n++ === 6) return void this.push(null);
          const buf = filePool.take();
          buf.fill(n);
          pushed.push(buf);
          this.push(buf.subarray(0, 1000));
        },
      });
    }, 6000);
    const body = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(body.length).toBe(6000);
    expect(body[0]).toBe(1);
    expect(body[5999]).toBe(6);
    // The write callbacks ran before the response finished; every buffer is free again.
    const back = new Set(Array.from({ length: filePool.free }, () => filePool.take()));
    for (const b of pushed) expect(back.has(b)).toBe(true);
  });

  it("a body that fails half-way cuts the connection", async () => {
    const url = await serve(() => {
      let n = 0;
      return new Readable({
        read() {
          if (n++ < 2) this.push(Buffer.alloc(1000, 1));
          else this.destroy(new Error("upstream went away"));
        },
      });
    }, 5000);
    await expect(fetch(url).then((r) => r.arrayBuffer())).rejects.toThrow();
  });

  it("a body that stops early without an error cuts the connection too", async () => {
    const url = await serve(() => {
      let n = 0;
      return new Readable({
        read() {
          if (n++ < 2) this.push(Buffer.alloc(1000, 1));
          else this.destroy();
        },
      });
    }, 5000);
    await expect(fetch(url).then((r) => r.arrayBuffer())).rejects.toThrow();
  });
});
