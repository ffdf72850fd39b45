// Builds the coordinator a runtime uses from its config: memory alone without
// redis.url; with it, Redis (failing over to memory while Redis is away) plus
// the health that says which one answers. Start-up waits a moment for Redis,
// so a replica's first misses are already coordinated with the fleet, but
// never fails because Redis is down.
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import type { Metrics } from "../observability/metrics.js";
import type { Coordinator } from "./coordinator.js";
import { FailoverCoordinator } from "./failover-coordinator.js";
import { MemoryCoordinator } from "./memory-coordinator.js";
import type { RedisCoordinator } from "./redis-coordinator.js";
import { RedisHealth, type CoordinationStatus } from "./redis-health.js";

export interface Coordination {
  readonly coordinator: Coordinator;
  readonly leaseMs: number;
  /** Set when redis.url is. */
  readonly redis: { readonly coordinator: RedisCoordinator; readonly health: RedisHealth; readonly prefix: string } | undefined;
  /** For /readyz and logs: which coordination is in force and why. */
  status(): CoordinationStatus;
  close(): Promise<void>;
}

export interface CoordinationOptions {
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** How long start-up waits for Redis before serving with in-process coordination. */
  readonly connectWaitMs?: number;
}

export async function createCoordination(config: Config, opts: CoordinationOptions): Promise<Coordination> {
  const leaseMs = config.redis.lease;
  const memory = new MemoryCoordinator({ leaseMs });
  const since = new Date().toISOString();
  if (config.redis.url === "") {
    return {
      coordinator: memory,
      leaseMs,
      redis: undefined,
      status: () => ({ state: "disabled", coordination: "memory", since, detail: "no redis.url: this replica coordinates in-process only" }),
      close: () => memory.close(),
    };
  }
  let health: RedisHealth | undefined;
  // Loaded only when Redis is configured: ioredis alone is ~14 MiB of a
  // single replica's resident memory (issue 7's RSS budget).
  const { RedisCoordinator } = await import("./redis-coordinator.js");
  const redis = RedisCoordinator.connect(config.redis.url, {
    prefix: config.redis.prefix,
    leaseMs,
    onError: (err) => health?.fail(err),
  });
  health = new RedisHealth(redis.client, { logger: opts.logger, ...(opts.metrics ? { metrics: opts.metrics } : {}) });
  const failover = new FailoverCoordinator(redis, memory, health);
  await health.waitUp(opts.connectWaitMs ?? 2000);
  const h = health;
  return {
    coordinator: failover,
    leaseMs,
    redis: { coordinator: redis, health: h, prefix: config.redis.prefix },
    status: () => h.status(),
    close: () => failover.close(),
  };
}
