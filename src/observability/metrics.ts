// Every Prometheus metric tug exposes, in one place, on a registry of its own
// (so tests can build many apps side by side). Names follow Prometheus
// conventions: _total counters, _bytes and _seconds units.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: "tug_http_requests_total",
    help: "Requests served, by endpoint (manifest, blob, tags, referrers, base, health, metrics, other), method and status.",
    labelNames: ["endpoint", "method", "status"] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: "tug_http_request_duration_seconds",
    help: "Time to the end of the response, by endpoint.",
    labelNames: ["endpoint"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly cacheRequests = new Counter({
    name: "tug_cache_requests_total",
    help: "Manifest and blob lookups by outcome: hit, miss, revalidated, stale.",
    labelNames: ["kind", "outcome"] as const,
    registers: [this.registry],
  });
  readonly servedBytes = new Counter({
    name: "tug_served_bytes_total",
    help: "Body bytes sent to clients, by source: cache (a hit) or upstream (a miss, streamed while filling).",
    labelNames: ["kind", "source"] as const,
    registers: [this.registry],
  });
  readonly upstreamBytes = new Counter({
    name: "tug_upstream_fetched_bytes_total",
    help: "Body bytes fetched from upstreams.",
    labelNames: ["upstream"] as const,
    registers: [this.registry],
  });
  readonly upstreamRequests = new Counter({
    name: "tug_upstream_requests_total",
    help: "Requests sent to upstreams, by upstream, method and final status (or 'error').",
    labelNames: ["upstream", "method", "status"] as const,
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: "tug_upstream_errors_total",
    help: "Upstream failures by upstream and reason (unreachable, timeout, status_5xx, status_429, digest_mismatch, truncated).",
    labelNames: ["upstream", "reason"] as const,
    registers: [this.registry],
  });
  readonly upstreamDuration = new Histogram({
    name: "tug_upstream_request_duration_seconds",
    help: "Time to upstream response headers, by upstream.",
    labelNames: ["upstream"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly tokenFetches = new Counter({
    name: "tug_upstream_token_fetches_total",
    help: "Bearer tokens fetched from upstream realms.",
    labelNames: ["upstream"] as const,
    registers: [this.registry],
  });
  readonly fillsInFlight = new Gauge({
    name: "tug_blob_fills_in_flight",
    help: "Blob fills from upstream under way in this process.",
    registers: [this.registry],
  });
  readonly coalesced = new Counter({
    name: "tug_coalesced_requests_total",
    help: "Requests that joined a fetch already under way instead of going upstream.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly lockWaits = new Counter({
    name: "tug_lock_waits_total",
    help: "Times a replica waited on another replica's fetch lock.",
    registers: [this.registry],
  });
  readonly diskUsage = new Gauge({
    name: "tug_disk_usage_bytes",
    help: "Bytes of cached content on disk.",
    registers: [this.registry],
  });
  readonly diskBudget = new Gauge({
    name: "tug_disk_budget_bytes",
    help: "The configured cache.maxSize.",
    registers: [this.registry],
  });
  readonly evictions = new Counter({
    name: "tug_evictions_total",
    help: "Items removed by the disk budget, by kind (blob, manifest).",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly evictedBytes = new Counter({
    name: "tug_evicted_bytes_total",
    help: "Bytes removed by the disk budget.",
    registers: [this.registry],
  });
  readonly redisUp = new Gauge({
    name: "tug_redis_up",
    help: "1 when Redis coordination is working, 0 when degraded to in-process only; absent without redis.url.",
    registers: [this.registry],
  });
  readonly upstreamShortCircuits = new Counter({
    name: "tug_upstream_short_circuits_total",
    help: "Upstream requests not sent because a recent failure was remembered (negative_cache) or the upstream is marked down (breaker_open).",
    labelNames: ["upstream", "reason"] as const,
    registers: [this.registry],
  });
  readonly upstreamQueued = new Gauge({
    name: "tug_upstream_queued_requests",
    help: "Upstream requests waiting for a slot under resilience.upstreamConcurrency, by upstream.",
    labelNames: ["upstream"] as const,
    registers: [this.registry],
  });
  readonly upstreamUp = new Gauge({
    name: "tug_upstream_up",
    help: "0 while an upstream's circuit breaker holds it down, else 1.",
    labelNames: ["upstream"] as const,
    registers: [this.registry],
  });

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: "tug_" });
  }
}
