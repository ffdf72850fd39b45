// Builds a tug for a test: in-process (createRuntime + a real HTTP server on
// port 0) with a config made from a few upstream URLs, a temp data dir and an
// injectable clock.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig, type Config } from "../../src/config/index.js";
import { startServer, type RunningServer } from "../../src/main.js";
import { createRuntime } from "../../src/runtime.js";
import { silentLogger } from "../../src/observability/logger.js";

export interface TestTug extends RunningServer {
  readonly dataDir: string;
  readonly config: Config;
  /** Moves the fake clock forward. */
  advance(ms: number): void;
  /** host:port, for clients that take a registry host. */
  readonly host: string;
}

export interface TestTugOptions {
  /** host key → upstream URL; the first is the default unless `defaultUpstream` says otherwise. */
  upstreams: Record<string, string | Record<string, unknown>>;
  defaultUpstream?: string | null;
  dataDir?: string;
  cache?: Record<string, string>;
  timeouts?: Record<string, string>;
  extra?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Default: a silent logger. */
  logger?: import("pino").Logger;
}

export async function tempDir(prefix = "tug-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export function testConfig(opts: TestTugOptions & { dataDir: string }): Config {
  const hosts = Object.keys(opts.upstreams);
  const def = opts.defaultUpstream === undefined ? hosts[0] : opts.defaultUpstream;
  const upstreams: Record<string, Record<string, unknown>> = {};
  for (const [host, v] of Object.entries(opts.upstreams)) {
    upstreams[host] = { ...(typeof v === "string" ? { url: v } : v), ...(host === def ? { default: true } : {}) };
  }
  return parseConfig(
    {
      listen: "127.0.0.1:0",
      dataDir: opts.dataDir,
      cache: { tagTTL: "5m", staleIfError: "7d", ...opts.cache },
      timeouts: { connect: "2s", headers: "5s", body: "5s", ...opts.timeouts },
      log: { level: "silent" },
      upstreams,
      ...opts.extra,
    },
    opts.env ?? {},
  );
}

export async function startTug(opts: TestTugOptions): Promise<TestTug> {
  const dataDir = opts.dataDir ?? (await tempDir());
  const config = testConfig({ ...opts, dataDir });
  let offset = 0;
  const now = (): number => Date.now() + offset;
  const runtime = await createRuntime(config, { logger: opts.logger ?? silentLogger(), now });
  const running = await startServer(config, runtime);
  return {
    ...running,
    dataDir,
    config,
    host: `127.0.0.1:${running.port}`,
    advance(ms: number) {
      offset += ms;
    },
    async stop() {
      // A test may leave a response unread; its connection must not hold the stop.
      (running.server as import("node:http").Server).closeAllConnections();
      await running.stop();
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
