// A slow uplink in front of an upstream registry (node:http): requests pass
// through unchanged, response bodies are paced to a byte rate per response.
// It records every response — method, path, Range, bytes sent so far, when
// it started and ended — so tests can act "at 30 % of the download" and check
// that a follower's first byte came before the upstream download ended.
import { createServer, request as httpRequest, Agent, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ProxiedResponse {
  readonly method: string;
  readonly path: string;
  readonly range: string | undefined;
  status: number | undefined;
  /** Body bytes sent to the client so far. */
  sent: number;
  readonly startedAt: number;
  /** When the body's last byte was sent (undefined while running, or if cut). */
  endedAt: number | undefined;
  /** True when the client went away before the end. */
  cut: boolean;
}

export interface ThrottleProxy {
  readonly url: string;
  readonly host: string;
  readonly responses: ProxiedResponse[];
  /** Bytes per second per response body; Infinity = no pacing. */
  setRate(bytesPerSecond: number): void;
  /** GETs of blobs whose path includes `fragment`. */
  blobGets(fragment?: string): ProxiedResponse[];
  close(): Promise<void>;
}

const SLICE = 64 * 1024;

export async function startThrottleProxy(targetUrl: string, bytesPerSecond: number): Promise<ThrottleProxy> {
  const target = new URL(targetUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let rate = bytesPerSecond;
  const responses: ProxiedResponse[] = [];
  const server: Server = createServer((req, res) => {
    const rec: ProxiedResponse = {
      method: req.method ?? "GET",
      path: (req.url ?? "/").split("?")[0]!,
      range: req.headers.range,
      status: undefined,
      sent: 0,
      startedAt: Date.now(),
      endedAt: undefined,
      cut: false,
    };
    responses.push(rec);
    const headers = { ...req.headers, host: target.host };
    const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent }, (upRes) => {
      rec.status = upRes.statusCode;
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      // Paced: slice i may leave at start + bytes-before-it / rate.
      const start = Date.now();
      const queue: Buffer[] = [];
      let ended = false;
      let flushing = false;
      const flush = (): void => {
        if (flushing) return;
        flushing = true;
        const step = (): void => {
          if (res.destroyed) return;
          const next = queue.shift();
          if (!next) {
            flushing = false;
            if (ended) {
              res.end(() => {
                rec.endedAt = Date.now();
              });
            } else {
              upRes.resume();
            }
            return;
          }
          const due = rate === Infinity ? 0 : start + (rec.sent * 1000) / rate - Date.now();
          const send = (): void => {
            if (res.destroyed) return;
            rec.sent += next.length;
            res.write(next);
            step();
          };
          if (due > 0) setTimeout(send, due);
          else send();
        };
        step();
      };
      upRes.on("data", (chunk: Buffer) => {
        for (let off = 0; off < chunk.length; off += SLICE) queue.push(chunk.subarray(off, off + SLICE));
        upRes.pause();
        flush();
      });
      upRes.on("end", () => {
        ended = true;
        flush();
      });
      upRes.on("error", () => res.destroy());
    });
    up.on("error", () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    res.on("close", () => {
      if (rec.endedAt === undefined) {
        rec.cut = true;
        up.destroy();
      }
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    responses,
    setRate(r) {
      rate = r;
    },
    blobGets(fragment = "/blobs/") {
      return responses.filter((r) => r.method === "GET" && r.path.includes("/blobs/") && r.path.includes(fragment));
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
