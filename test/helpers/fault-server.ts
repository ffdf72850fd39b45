// A scriptable upstream for fault injection (node:http): each test says how
// each path answers — normally, cut short, with wrong bytes, slowly, 429, a
// redirect — and reads back every request it received.
import { createServer, type IncomingMessage, type ServerResponse, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingMessage["headers"];
}

export type Behaviour =
  | { kind: "bytes"; body: Buffer; headers?: Record<string, string>; status?: number }
  /** Sends Content-Length of the whole body but only its first `after` bytes, then cuts the connection. */
  | { kind: "truncate"; body: Buffer; after: number; headers?: Record<string, string> }
  /** Sends `chunk` bytes every `everyMs` ms. */
  | { kind: "trickle"; body: Buffer; chunk: number; everyMs: number; headers?: Record<string, string> }
  /** Accepts the request and never answers. */
  | { kind: "hang" }
  | { kind: "status"; status: number; headers?: Record<string, string>; body?: string }
  | { kind: "redirect"; location: string; status?: number }
  | { kind: "handler"; fn: (req: IncomingMessage, res: ServerResponse) => void };

export interface FaultServer {
  readonly url: string;
  readonly host: string;
  readonly requests: SeenRequest[];
  /** Behaviour for "METHOD path" or "path" (any method); the first matching entry wins. */
  on(pathOrMethodPath: string, b: Behaviour): void;
  count(filter?: { method?: string; pathIncludes?: string }): number;
  close(): Promise<void>;
}

export async function startFaultServer(host = "127.0.0.1"): Promise<FaultServer> {
  const routes = new Map<string, Behaviour>();
  const requests: SeenRequest[] = [];
  const hanging = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const path = req.url ?? "/";
    requests.push({ method: req.method ?? "GET", path, headers: req.headers });
    const pathOnly = path.split("?")[0]!;
    const b = routes.get(`${req.method} ${pathOnly}`) ?? routes.get(pathOnly) ?? (pathOnly === "/v2/" ? { kind: "bytes", body: Buffer.from("{}") } : undefined);
    if (!b) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "NAME_UNKNOWN", message: "not scripted" }] }));
      return;
    }
    const head = req.method === "HEAD";
    switch (b.kind) {
      case "bytes":
        res.writeHead(b.status ?? 200, { "content-length": String(b.body.length), ...b.headers });
        res.end(head ? undefined : b.body);
        return;
      case "truncate":
        res.writeHead(200, { "content-length": String(b.body.length), ...b.headers });
        if (head) return void res.end();
        res.write(b.body.subarray(0, b.after), () => res.destroy());
        return;
      case "trickle": {
        res.writeHead(200, { "content-length": String(b.body.length), ...b.headers });
        if (head) return void res.end();
        let off = 0;
        const tick = (): void => {
          if (res.destroyed) return;
          const next = b.body.subarray(off, off + b.chunk);
          off += next.length;
          if (off >= b.body.length) return void res.end(next);
          res.write(next);
          setTimeout(tick, b.everyMs);
        };
        tick();
        return;
      }
      case "hang":
        hanging.add(res);
        return;
      case "status":
        res.writeHead(b.status, { "content-type": "application/json", ...b.headers });
        res.end(head ? undefined : (b.body ?? JSON.stringify({ errors: [{ code: "UNKNOWN", message: `scripted ${b.status}` }] })));
        return;
      case "redirect":
        res.writeHead(b.status ?? 307, { location: b.location, "content-length": "0" });
        res.end();
        return;
      case "handler":
        b.fn(req, res);
        return;
    }
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    host: `${host}:${port}`,
    requests,
    on(key, b) {
      routes.set(key, b);
    },
    count(filter = {}) {
      return requests.filter((r) => (!filter.method || r.method === filter.method) && (!filter.pathIncludes || r.path.includes(filter.pathIncludes))).length;
    },
    async close() {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
