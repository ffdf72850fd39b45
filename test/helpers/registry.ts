// A real upstream for integration tests: Debian's docker-registry (CNCF
// distribution 2.8) on a free loopback port, fronted by a tiny counting
// reverse proxy. distribution logs "response completed" only after the
// response is written, and we read its log through a pipe, so a log-based
// count could lag behind the client; the proxy records each request before it
// forwards it, which makes requests() exact the moment a client has its answer.
import { writeFile } from "node:fs/promises";
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { stringify } from "yaml";
import { freePort } from "./ports.js";
import { makeTempDir, removeTempDir, requireBinary, startDaemon, stopChild } from "./process.js";

export interface LoggedRequest {
  method: string;
  /** Path without the query string, e.g. /v2/library/alpine/manifests/3.20 */
  path: string;
  /** Raw query string without "?", "" when absent. */
  query: string;
  /** Path plus query, as received. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Status the registry answered with (set once its response headers arrive). */
  status?: number;
  /** Date.now() when the request reached the proxy. */
  at: number;
}

export interface RequestFilter {
  /** Exact method, case-insensitive. */
  method?: string;
  /** Substring of the path (query excluded). */
  pathIncludes?: string;
  /** Tested against the path (query excluded). */
  pathMatches?: RegExp;
}

/**
 * Lets a test answer a request itself (to simulate 5xx, 429, slow or cut-off
 * upstreams). Return true when the request was handled; false to forward it.
 */
export type Interceptor = (req: IncomingMessage, res: ServerResponse, logged: LoggedRequest) => boolean;

/**
 * Token authentication for the registry (distribution's `auth: token`), as a
 * test token server provides it (see token-server.ts): the registry trusts
 * certPath and sends clients to realm; mint signs the admin tokens that
 * seedUrl adds to every request.
 */
export interface RegistryTokenAuth {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  readonly certPath: string;
  mint(access: Array<{ type: string; name: string; actions: string[] }>): string;
}

export interface StartRegistryOptions {
  /** Deep-merged over the generated distribution config (see its configuration docs). */
  extraConfig?: Record<string, unknown>;
  /** Require Bearer tokens from this token server (anonymous requests get 401 challenges). */
  auth?: RegistryTokenAuth;
}

export interface RunningRegistry {
  /** The counting proxy, http://127.0.0.1:PORT — what tests and tug should talk to. */
  url: string;
  /** 127.0.0.1:PORT of the proxy, for clients that want a registry host. */
  host: string;
  /** The registry itself, bypassing the counter (e.g. for seeding). */
  directUrl: string;
  /**
   * Where to push seed images: directUrl, or with `auth` an uncounted proxy
   * that adds an admin token (pull, push) for the repository of each request.
   */
  seedUrl: string;
  /** Temp dir holding config.yml and storage/. Removed by stop(). */
  dir: string;
  /** Requests seen by the proxy so far, in arrival order (a copy). */
  requests(): LoggedRequest[];
  countRequests(filter?: RequestFilter): number;
  resetRequests(): void;
  /** Installs (or with undefined removes) an interceptor in front of the registry. */
  setInterceptor(interceptor: Interceptor | undefined): void;
  /** Recent registry stderr/stdout, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

export function matchesFilter(req: LoggedRequest, filter: RequestFilter = {}): boolean {
  if (filter.method !== undefined && req.method.toUpperCase() !== filter.method.toUpperCase()) return false;
  if (filter.pathIncludes !== undefined && !req.path.includes(filter.pathIncludes)) return false;
  if (filter.pathMatches !== undefined) {
    filter.pathMatches.lastIndex = 0;
    if (!filter.pathMatches.test(req.path)) return false;
  }
  return true;
}

export function countRequests(requests: LoggedRequest[], filter: RequestFilter = {}): number {
  return requests.filter((r) => matchesFilter(r, filter)).length;
}

// ---------------------------------------------------------------- config

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function deepMerge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

// ---------------------------------------------------------------- proxy

function startCountingProxy(
  target: { host: string; port: number },
  record: (req: LoggedRequest) => void,
  state: { interceptor?: Interceptor },
  authorize?: (path: string) => string,
) {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const server: Server = createServer((req, res) => {
    const url = req.url ?? "/";
    const q = url.indexOf("?");
    const logged: LoggedRequest = {
      method: req.method ?? "GET",
      path: q === -1 ? url : url.slice(0, q),
      query: q === -1 ? "" : url.slice(q + 1),
      url,
      headers: req.headers,
      at: Date.now(),
    };
    record(logged);
    if (state.interceptor?.(req, res, logged)) return;
    // The Host header passes through unchanged, so the Location URLs the
    // registry builds (uploads) point back at the proxy.
    const headers = authorize ? { ...req.headers, authorization: authorize(logged.path) } : req.headers;
    const upstream = httpRequest(
      { host: target.host, port: target.port, method: req.method, path: url, headers, agent },
      (upRes) => {
        logged.status = upRes.statusCode;
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.rawHeaders);
        upRes.pipe(res);
        upRes.on("error", () => res.destroy());
      },
    );
    upstream.on("error", (err) => {
      if (!res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`proxy error: ${err.message}`);
      } else {
        res.destroy(err);
      }
    });
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  });
  server.keepAliveTimeout = 5_000;
  return { server, agent };
}

// ---------------------------------------------------------------- registry

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<RunningRegistry> {
  const bin = requireBinary("docker-registry");
  const dir = makeTempDir("registry");
  const configPath = join(dir, "config.yml");
  let port = 0;
  let directUrl = "";
  let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
  // freePort() closes its socket before the registry binds; another process
  // may take the port in between, so retry a few times on EADDRINUSE.
  for (let attempt = 1; daemon === undefined; attempt++) {
    port = await freePort();
    directUrl = `http://127.0.0.1:${port}`;
    const config = deepMerge(
      {
        version: 0.1,
        log: { level: "info", accesslog: { disabled: true }, formatter: "text" },
        storage: {
          filesystem: { rootdirectory: join(dir, "storage") },
          delete: { enabled: true },
          maintenance: { uploadpurging: { enabled: false } },
        },
        http: { addr: `127.0.0.1:${port}`, secret: "tug-test-secret" },
        ...(opts.auth
          ? { auth: { token: { realm: opts.auth.realm, service: opts.auth.service, issuer: opts.auth.issuer, rootcertbundle: opts.auth.certPath } } }
          : {}),
      },
      opts.extraConfig ?? {},
    );
    await writeFile(configPath, stringify(config));
    const url = directUrl;
    try {
      daemon = await startDaemon("docker-registry", bin, ["serve", configPath], async () => {
        const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        return res.status === 200 || (opts.auth !== undefined && res.status === 401);
      });
    } catch (err) {
      if (attempt < 3 && err instanceof Error && err.message.includes("address already in use")) continue;
      await removeTempDir(dir);
      throw err;
    }
  }
  const registry = daemon;

  let log: LoggedRequest[] = [];
  const state: { interceptor?: Interceptor } = {};
  const proxy = startCountingProxy({ host: "127.0.0.1", port }, (r) => log.push(r), state);
  await new Promise<void>((resolve, reject) => {
    proxy.server.once("error", reject);
    proxy.server.listen(0, "127.0.0.1", () => resolve());
  });
  const proxyPort = (proxy.server.address() as AddressInfo).port;
  let seed: ReturnType<typeof startCountingProxy> | undefined;
  let seedUrl = directUrl;
  if (opts.auth) {
    const auth = opts.auth;
    seed = startCountingProxy({ host: "127.0.0.1", port }, () => undefined, {}, (path) => {
      const name = /^\/v2\/(.+?)\/(?:blobs|manifests|tags)\//.exec(path)?.[1];
      return `Bearer ${auth.mint(name ? [{ type: "repository", name, actions: ["pull", "push"] }] : [])}`;
    });
    const seedServer = seed.server;
    await new Promise<void>((resolve, reject) => {
      seedServer.once("error", reject);
      seedServer.listen(0, "127.0.0.1", () => resolve());
    });
    seedUrl = `http://127.0.0.1:${(seedServer.address() as AddressInfo).port}`;
  }

  let stopped = false;
  return {
    url: `http://127.0.0.1:${proxyPort}`,
    host: `127.0.0.1:${proxyPort}`,
    directUrl,
    seedUrl,
    dir,
    requests: () => [...log],
    countRequests: (filter) => countRequests(log, filter),
    resetRequests: () => {
      log = [];
    },
    setInterceptor: (interceptor) => {
      if (interceptor === undefined) delete state.interceptor;
      else state.interceptor = interceptor;
    },
    logs: registry.logs,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      proxy.server.closeAllConnections();
      await new Promise<void>((resolve) => proxy.server.close(() => resolve()));
      proxy.agent.destroy();
      if (seed) {
        const s = seed;
        s.server.closeAllConnections();
        await new Promise<void>((resolve) => s.server.close(() => resolve()));
        s.agent.destroy();
      }
      await stopChild(registry.child);
      await removeTempDir(dir);
    },
  };
}
