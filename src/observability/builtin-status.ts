// The status providers tug registers by itself, as fallbacks that the parts
// owning a state replace with their own (registerDefault never overrides):
// "redis" (coordination), "upstreams" (circuit breakers), "cache" (disk budget,
// fills). Each reads what the process already knows; none does I/O.
import type { Config } from "../config/index.js";
import type { Metrics } from "./metrics.js";
import type { StatusProviders } from "./readiness.js";

interface LabelledValue {
  readonly labels: Partial<Record<string, string | number>>;
  readonly value: number;
}

async function values(metric: { get(): Promise<{ values: LabelledValue[] }> }): Promise<LabelledValue[]> {
  return (await metric.get()).values;
}

function sumWhere(vals: readonly LabelledValue[], label: string, equals: string): number {
  return vals.filter((v) => v.labels[label] === equals).reduce((n, v) => n + v.value, 0);
}

export function registerBuiltinStatus(providers: StatusProviders, deps: { config: Config; metrics: Metrics; fillsInFlight: () => number }): void {
  const { config, metrics } = deps;

  providers.registerDefault("redis", async () => {
    if (config.redis.url === "") return { state: "disabled", detail: "no redis.url: this replica coordinates in-process only" };
    // The Redis coordinator registers the real state under this name.
    return { state: "unknown", detail: "redis.url is set but no Redis coordinator reports its state" };
  });

  providers.registerDefault("upstreams", async () => {
    const [up, requests, errors] = await Promise.all([values(metrics.upstreamUp), values(metrics.upstreamRequests), values(metrics.upstreamErrors)]);
    const hosts: Record<string, unknown> = {};
    let down = 0;
    for (const [host, u] of Object.entries(config.upstreams)) {
      const gauge = up.find((v) => v.labels["upstream"] === host);
      // tug_upstream_up is set by a circuit breaker; without one the state is only what was counted.
      const state = gauge === undefined ? "unknown" : gauge.value === 0 ? "down" : "up";
      if (state === "down") down++;
      hosts[host] = { state, url: u.url, requests: sumWhere(requests, "upstream", host), errors: sumWhere(errors, "upstream", host) };
    }
    return { state: down === 0 ? "ok" : down === Object.keys(hosts).length ? "down" : "degraded", hosts };
  });

  providers.registerDefault("cache", async () => {
    const usage = (await values(metrics.diskUsage))[0]?.value;
    return { state: "ok", diskUsageBytes: usage ?? null, diskBudgetBytes: config.cache.maxSize, fillsInFlight: deps.fillsInFlight() };
  });
}
