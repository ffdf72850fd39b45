// Builds the parts of a running tug from a Config: stores, upstream clients,
// the pull-through service and the app. main() serves it; tests build it
// in-process the same way.
import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Agent } from "undici";
import type { Logger } from "pino";
import type { Hono } from "hono";
import type { Config } from "./config/index.js";
import { createApp } from "./app.js";
import { BlobStore } from "./cache/blob-store.js";
import { Layout } from "./cache/layout.js";
import { ManifestStore } from "./cache/manifest-store.js";
import { PullThrough } from "./cache/pull-through.js";
import { DiskTagStore } from "./cache/tag-store.js";
import { RegistryClient } from "./upstream/registry-client.js";
import { UpstreamTable, type Route } from "./upstream/routing.js";
import { TokenCache } from "./upstream/token-cache.js";
import { Metrics } from "./observability/metrics.js";

export interface Runtime {
  readonly config: Config;
  readonly app: Hono;
  readonly pullThrough: PullThrough;
  readonly blobs: BlobStore;
  readonly layout: Layout;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Finishes (up to graceMs) or abandons fills, then closes upstream connections. */
  close(graceMs?: number): Promise<void>;
}

export interface RuntimeOptions {
  readonly logger: Logger;
  readonly now?: () => number;
  readonly metrics?: Metrics;
  /** One log line per request (default true). */
  readonly accessLog?: boolean;
}

export async function createRuntime(config: Config, opts: RuntimeOptions): Promise<Runtime> {
  const { logger } = opts;
  const now = opts.now ?? Date.now;
  const metrics = opts.metrics ?? new Metrics();
  metrics.diskBudget.set(config.cache.maxSize);
  const layout = new Layout(config.dataDir);
  await mkdir(layout.tmpDir, { recursive: true });
  await removeAbandonedTemps(layout, logger);

  const dispatcher = new Agent({
    connect: { timeout: config.timeouts.connect },
    keepAliveTimeout: 30_000,
    headersTimeout: config.timeouts.headers,
    bodyTimeout: config.timeouts.body,
  });
  const tokens = new TokenCache({ now });
  const table = new UpstreamTable(config);
  const clients = new Map<string, RegistryClient>();
  for (const u of table.all()) {
    clients.set(u.host, new RegistryClient(u, { dispatcher, tokens, timeouts: config.timeouts, logger, metrics, now }));
  }
  const clientFor = (route: Route): RegistryClient => clients.get(route.upstream.host)!;

  const blobs = new BlobStore(layout);
  const pullThrough = new PullThrough({
    manifests: new ManifestStore(layout, { memoryBytes: config.cache.memoryBytes }),
    tags: new DiskTagStore(layout),
    blobs,
    clientFor,
    logger,
    metrics,
    now,
    options: { tagTTL: config.cache.tagTTL, staleIfError: config.cache.staleIfError, fillTimeout: config.timeouts.fill },
  });
  const app = createApp({ pullThrough, upstreams: table, logger, metrics, accessLog: opts.accessLog });
  return {
    config,
    app,
    pullThrough,
    blobs,
    layout,
    logger,
    metrics,
    async close(graceMs = 10_000) {
      await blobs.drain(graceMs);
      await dispatcher.close().catch(() => undefined);
    },
  };
}

/**
 * Temp files of processes that are gone are never served and never renamed:
 * remove them. A temp file's name carries its writer's pid; one whose writer
 * still runs (another replica on a shared disk, or this process) is kept.
 */
export async function removeAbandonedTemps(layout: Layout, logger: Logger): Promise<number> {
  let names: string[];
  try {
    names = await readdir(layout.tmpDir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const pid = Number(name.split(".")[1]);
    if (Number.isInteger(pid) && pid !== process.pid && pidAlive(pid)) continue;
    if (pid === process.pid) continue;
    await rm(join(layout.tmpDir, name), { force: true });
    removed++;
  }
  if (removed > 0) logger.info({ removed }, "removed abandoned temp files");
  return removed;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
