// Builds the parts of a running tug from a Config: stores, upstream clients,
// the pull-through service and the app. main() serves it; tests build it
// in-process the same way.
import { mkdir } from "node:fs/promises";
import { Agent } from "undici";
import type { Logger } from "pino";
import type { Hono } from "hono";
import type { Config } from "./config/index.js";
import { createApp } from "./app.js";
import { BlobStore } from "./cache/blob-store.js";
import { Evictor } from "./cache/evictor.js";
import { Layout } from "./cache/layout.js";
import { ManifestStore } from "./cache/manifest-store.js";
import { PullThrough } from "./cache/pull-through.js";
import { DiskTagStore } from "./cache/tag-store.js";
import { RegistryClient } from "./upstream/registry-client.js";
import { UpstreamTable, type Route } from "./upstream/routing.js";
import { TokenCache } from "./upstream/token-cache.js";
import { UpstreamGuard } from "./upstream/upstream-guard.js";
import { Metrics } from "./observability/metrics.js";
import { ClientAccess } from "./auth/client-access.js";
import { PrivateIndex } from "./auth/private-index.js";
import { TokenRelay } from "./auth/token-relay.js";
import { BasicUsers } from "./auth/basic-users.js";
import { MAX_TAG_LIST_TTL, TagLists } from "./cache/tag-lists.js";
import { Readiness, type StatusProviders } from "./observability/readiness.js";
import { registerBuiltinStatus } from "./observability/builtin-status.js";
import { createCoordination } from "./coordination/coordination.js";
import type { CoordinationStatus } from "./coordination/redis-health.js";
import { FleetFills } from "./cache/fleet-fills.js";
import { RedisTagStore } from "./cache/redis-tag-store.js";
import { TempSweeper } from "./cache/temp-sweeper.js";

export interface Runtime {
  readonly config: Config;
  readonly app: Hono;
  readonly pullThrough: PullThrough;
  readonly blobs: BlobStore;
  readonly layout: Layout;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The disk budget: LRU eviction past cache.maxSize; also evictTo / evictOlderThan on demand. */
  readonly evictor: Evictor;
  /** /readyz's checks; main marks it draining on SIGTERM. */
  readonly readiness: Readiness;
  /** Where parts register their state for /readyz: `status.register("redis", () => ({ state: "up" }))`. */
  readonly status: StatusProviders;
  /** Redis coordination: up, degraded (in-process only), connecting, or disabled (also /readyz's "redis" component). */
  readonly coordinationStatus: () => CoordinationStatus;
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
  // Without redis.url there is no Redis state to show (a constant 0 would page someone).
  if (config.redis.url === "") metrics.registry.removeSingleMetric("tug_redis_up");
  const layout = new Layout(config.dataDir);
  await mkdir(layout.tmpDir, { recursive: true });
  const coordination = await createCoordination(config, { logger, metrics });
  // Start-up cleanup of tmp/, then a heartbeat (how other replicas tell our temp files are alive) and periodic sweeps.
  const sweeper = new TempSweeper({ layout, logger, leaseMs: coordination.leaseMs, maxAgeMs: config.timeouts.fill + 2 * coordination.leaseMs });
  await sweeper.start();

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
    const guard = new UpstreamGuard({
      upstream: u.host,
      negativeTTL: config.resilience.negativeTTL,
      breakerFailures: config.resilience.breakerFailures,
      breakerCoolOff: config.resilience.breakerCoolOff,
      concurrency: config.resilience.upstreamConcurrency,
      now,
      logger,
      metrics,
    });
    clients.set(u.host, new RegistryClient(u, { dispatcher, tokens, timeouts: config.timeouts, logger, metrics, now, guard }));
  }
  // A route carrying a client's token (clientAuth, set only by the access gate) goes upstream as that client.
  const clientFor = (route: Route): RegistryClient => {
    const client = clients.get(route.upstream.host)!;
    return route.clientToken !== undefined ? client.withClientToken(route.clientToken) : client;
  };

  const evictor = new Evictor({
    root: layout.root,
    maxSize: config.cache.maxSize,
    highWatermark: config.limits.diskHighWatermark,
    lowWatermark: config.limits.diskLowWatermark,
    logger,
    metrics,
    now,
  });
  // The index is built in the background (a stat walk, no rehash): start-up never waits on a big cache.
  void evictor.start().catch((err: unknown) => logger.error({ err }, "could not index the cache directory"));
  const blobs = new BlobStore(layout, evictor);
  const manifests = new ManifestStore(layout, { memoryBytes: config.cache.memoryBytes, budget: evictor });
  const fleet = new FleetFills({
    coordinator: coordination.coordinator,
    blobs,
    layout,
    logger,
    metrics,
    leaseMs: coordination.leaseMs,
    startWaitMs: config.timeouts.headers + coordination.leaseMs,
    stallMs: config.timeouts.body + coordination.leaseMs,
  });
  const redis = coordination.redis;
  const tags = redis
    ? new RedisTagStore({
        disk: new DiskTagStore(layout),
        client: redis.coordinator.client,
        health: redis.health,
        prefix: redis.prefix,
        ttlMs: config.cache.tagTTL + config.cache.staleIfError + 60_000,
      })
    : new DiskTagStore(layout);
  const pullThrough = new PullThrough({
    manifests,
    tags,
    blobs,
    clientFor,
    logger,
    metrics,
    now,
    coordinator: coordination.coordinator,
    fleet,
    options: { tagTTL: config.cache.tagTTL, staleIfError: config.cache.staleIfError, fillTimeout: config.timeouts.fill, manifestTimeout: config.resilience.manifestTimeout },
  });
  const readiness = new Readiness({ config, layout, logger });
  registerBuiltinStatus(readiness.providers, { config, metrics, fillsInFlight: () => blobs.fillsInFlight });
  // Without redis.url the built-in "disabled" entry says it all.
  if (coordination.redis) readiness.providers.register("redis", () => ({ ...coordination.status() }));
  const privateIndex = new PrivateIndex({ layout, now, shared: config.redis.url !== "" });
  const marks = await privateIndex.load();
  if (marks > 0) logger.info({ marks }, "loaded the marks of private content");
  const access = new ClientAccess({
    pullThrough,
    clientFor,
    upstreams: table,
    index: privateIndex,
    tagLists: new TagLists({ now, ttl: Math.min(config.cache.tagTTL, MAX_TAG_LIST_TTL), staleIfError: config.cache.staleIfError, logger, metrics }),
    blobs,
    manifests,
    now,
    logger,
    options: { tagTTL: config.cache.tagTTL, staleIfError: config.cache.staleIfError },
  });
  const tokenRelay = new TokenRelay({ upstreams: table, clientFor: (upstream) => clients.get(upstream.host)!, dispatcher, timeouts: config.timeouts, logger, now });
  const users = new BasicUsers(config.auth.users, { now });
  const app = createApp({ pullThrough, upstreams: table, logger, metrics, accessLog: opts.accessLog, readiness, access, tokenRelay, users });
  return {
    config,
    app,
    pullThrough,
    blobs,
    layout,
    logger,
    metrics,
    readiness,
    status: readiness.providers,
    coordinationStatus: () => coordination.status(),
    evictor,
    async close(graceMs = 10_000) {
      fleet.beginClose();
      // Fills end (announced to followers, leases released) before Redis is let go.
      await Promise.all([blobs.drain(graceMs), fleet.close(graceMs)]);
      sweeper.stop();
      await coordination.close();
      await evictor.close();
      await dispatcher.close().catch(() => undefined);
    },
  };
}
