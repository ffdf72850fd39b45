// A slow uplink between a cache and its upstream: a TCP relay whose
// upstream → client direction shares one token bucket across all connections,
// so N parallel downloads split the rate the way they would on a real link.
import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";

/** A bucket that goes into debt: each chunk is sent, then the sender waits the debt off. */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #last = performance.now();

  /** rate in bytes per second; burst in bytes. */
  constructor(rate: number, burst: number) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
  }

  /** Spends n bytes; returns how many ms the sender must pause before its next chunk. */
  take(n: number): number {
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1000) / this.#rate;
  }
}

export interface ThrottledLink {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** bytes per second */
  readonly rate: number;
  /** Bytes relayed upstream → client so far. */
  bytesDown(): number;
  close(): Promise<void>;
}

export async function startThrottledLink(target: { host: string; port: number }, bytesPerSecond: number): Promise<ThrottledLink> {
  // 10 ms of burst: timers fire late by a millisecond or more, and a smaller
  // bucket would lose the tokens of that lateness (the link would run slow).
  const bucket = new TokenBucket(bytesPerSecond, Math.max(256 * 1024, bytesPerSecond / 100));
  let down = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    // Requests go up unthrottled: they are small.
    client.pipe(upstream);
    let held = 0; // reasons the upstream is paused: the bucket's debt, the client's backpressure
    const hold = (): void => {
      if (held++ === 0) upstream.pause();
    };
    const release = (): void => {
      if (--held === 0) upstream.resume();
    };
    upstream.on("data", (chunk: Buffer) => {
      down += chunk.length;
      if (!client.write(chunk)) {
        hold();
        client.once("drain", release);
      }
      const wait = bucket.take(chunk.length);
      if (wait > 0) {
        hold();
        setTimeout(release, wait);
      }
    });
    upstream.on("end", () => client.end());
    const destroyBoth = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", destroyBoth);
    upstream.on("error", destroyBoth);
    client.on("close", destroyBoth);
    upstream.on("close", () => {
      // Let what was written reach the client before it goes.
      client.end();
      sockets.delete(upstream);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    rate: bytesPerSecond,
    bytesDown: () => down,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
