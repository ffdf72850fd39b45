// /metrics scraped before and after a cold pull, a warm pull, a stale serve and
// a coalesced miss, through tug in front of a real docker-registry: every
// counter moves by exactly what happened.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { seedStandardImages, MANIFEST_ACCEPT, type StandardImages } from "../helpers/images.js";
import { delta, key, scrape, type Samples } from "../helpers/metrics.js";
import { startRegistry, type RunningRegistry } from "../helpers/registry.js";
import { startTug, type TestTug } from "../helpers/tug.js";
import { Metrics } from "../../src/observability/metrics.js";

let registry: RunningRegistry;
let images: StandardImages;
let tug: TestTug;

beforeAll(async () => {
  registry = await startRegistry();
  images = await seedStandardImages(registry.directUrl);
  tug = await startTug({ upstreams: { "docker.io": registry.url } });
}, 60_000);

afterAll(async () => {
  await tug?.stop();
  await registry?.stop();
});

/** A pull as a client does it: the manifest by tag, then the config and every layer, each read to the end. */
async function pull(repo: string, tag: string): Promise<{ manifestBytes: number; blobBytes: number; cache: string[] }> {
  const m = await fetch(`${tug.url}/v2/${repo}/manifests/${tag}`, { headers: { accept: MANIFEST_ACCEPT } });
  expect(m.status).toBe(200);
  const manifest = Buffer.from(await m.arrayBuffer());
  const cache = [m.headers.get("x-cache") ?? ""];
  const json = JSON.parse(manifest.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  let blobBytes = 0;
  for (const d of [json.config, ...json.layers]) {
    const b = await fetch(`${tug.url}/v2/${repo}/blobs/${d.digest}`);
    expect(b.status).toBe(200);
    cache.push(b.headers.get("x-cache") ?? "");
    blobBytes += (await b.arrayBuffer()).byteLength;
  }
  return { manifestBytes: manifest.length, blobBytes, cache };
}

const d = (before: Samples, after: Samples, name: string, labels: Record<string, string> = {}) => delta(before, after, name, labels);
const up = { upstream: "docker.io" };

describe("metrics on /metrics", () => {
  it("a cold pull counts misses, upstream requests and bytes fetched; a warm pull counts hits and bytes served from cache, and no upstream traffic", async () => {
    const app = images.app.built;
    const expectedBlobBytes = [app.config, ...app.layers].reduce((n, b) => n + b.size, 0);

    const s0 = await scrape(tug.url);
    const cold = await pull("team/app", "v1");
    const s1 = await scrape(tug.url);
    expect(cold.cache).toEqual(["MISS", "MISS", "MISS", "MISS", "MISS", "MISS"]);
    expect(cold.blobBytes).toBe(expectedBlobBytes);
    expect(d(s0, s1, "tug_http_requests_total", { endpoint: "manifest", method: "GET", status: "200" })).toBe(1);
    expect(d(s0, s1, "tug_http_requests_total", { endpoint: "blob", method: "GET", status: "200" })).toBe(5);
    expect(d(s0, s1, "tug_http_request_duration_seconds_count", { endpoint: "blob" })).toBe(5);
    expect(d(s0, s1, "tug_cache_requests_total", { kind: "manifest", outcome: "miss" })).toBe(1);
    expect(d(s0, s1, "tug_cache_requests_total", { kind: "blob", outcome: "miss" })).toBe(5);
    expect(d(s0, s1, "tug_cache_requests_total", { kind: "blob", outcome: "hit" })).toBe(0);
    expect(d(s0, s1, "tug_served_bytes_total", { kind: "blob", source: "upstream" })).toBe(expectedBlobBytes);
    expect(d(s0, s1, "tug_served_bytes_total", { kind: "manifest", source: "upstream" })).toBe(cold.manifestBytes);
    expect(d(s0, s1, "tug_served_bytes_total", { kind: "blob", source: "cache" })).toBe(0);
    expect(d(s0, s1, "tug_upstream_fetched_bytes_total", up)).toBe(expectedBlobBytes + cold.manifestBytes);
    expect(d(s0, s1, "tug_upstream_requests_total", { ...up, method: "GET", status: "200" })).toBe(6);
    expect(d(s0, s1, "tug_upstream_request_duration_seconds_count", up)).toBe(6);
    expect(s1.get(key("tug_blob_fills_in_flight"))).toBe(0);
    // Disk usage follows what was committed: the five blobs plus the manifest file.
    expect(d(s0, s1, "tug_disk_usage_bytes")).toBeGreaterThanOrEqual(expectedBlobBytes + cold.manifestBytes);

    const warm = await pull("team/app", "v1");
    const s2 = await scrape(tug.url);
    expect(warm.cache).toEqual(["HIT", "HIT", "HIT", "HIT", "HIT", "HIT"]);
    expect(d(s1, s2, "tug_cache_requests_total", { kind: "manifest", outcome: "hit" })).toBe(1);
    expect(d(s1, s2, "tug_cache_requests_total", { kind: "blob", outcome: "hit" })).toBe(5);
    expect(d(s1, s2, "tug_cache_requests_total", { kind: "blob", outcome: "miss" })).toBe(0);
    // "Bytes saved" is one query: what the cache served.
    expect(d(s1, s2, "tug_served_bytes_total", { kind: "blob", source: "cache" })).toBe(expectedBlobBytes);
    expect(d(s1, s2, "tug_served_bytes_total", { kind: "manifest", source: "cache" })).toBe(warm.manifestBytes);
    expect(d(s1, s2, "tug_upstream_fetched_bytes_total", up)).toBe(0);
    expect(d(s1, s2, "tug_upstream_requests_total", { ...up, method: "GET", status: "200" })).toBe(0);
  });

  it("a stale serve while the upstream answers 503 counts a stale outcome and an upstream error", async () => {
    await pull("library/busybox", "1.36");
    tug.advance(6 * 60_000); // past tagTTL (5m)
    registry.setInterceptor((req, res) => {
      if (!req.url?.includes("/manifests/")) return false;
      res.writeHead(503).end();
      return true;
    });
    try {
      const s0 = await scrape(tug.url);
      const r = await fetch(`${tug.url}/v2/library/busybox/manifests/1.36`, { headers: { accept: MANIFEST_ACCEPT } });
      await r.arrayBuffer();
      const s1 = await scrape(tug.url);
      expect(r.headers.get("x-cache")).toBe("STALE");
      expect(d(s0, s1, "tug_cache_requests_total", { kind: "manifest", outcome: "stale" })).toBe(1);
      expect(d(s0, s1, "tug_upstream_errors_total", { ...up, reason: "status_5xx" })).toBe(1);
      expect(d(s0, s1, "tug_upstream_requests_total", { ...up, method: "HEAD", status: "503" })).toBe(1);
      expect(d(s0, s1, "tug_served_bytes_total", { kind: "manifest", source: "cache" })).toBe(images.busybox.built.size);
    } finally {
      registry.setInterceptor(undefined);
    }
  });

  it("concurrent misses of one blob: one upstream fetch, the others counted as coalesced", async () => {
    const layer = images.big.built.layers[0]!;
    const s0 = await scrape(tug.url);
    registry.resetRequests();
    const sizes = await Promise.all(
      Array.from({ length: 3 }, async () => (await (await fetch(`${tug.url}/v2/big/blob/blobs/${layer.digest}`)).arrayBuffer()).byteLength),
    );
    const s1 = await scrape(tug.url);
    expect(sizes).toEqual(Array(3).fill(layer.size));
    expect(registry.countRequests({ method: "GET", pathIncludes: layer.digest })).toBe(1);
    expect(d(s0, s1, "tug_coalesced_requests_total", { kind: "blob" })).toBe(2);
    expect(d(s0, s1, "tug_cache_requests_total", { kind: "blob", outcome: "miss" })).toBe(3);
    expect(d(s0, s1, "tug_upstream_fetched_bytes_total", up)).toBe(layer.size);
    expect(d(s0, s1, "tug_served_bytes_total", { kind: "blob", source: "upstream" })).toBe(3 * layer.size);
  });

  it("shows the disk budget, hides tug_redis_up without redis.url, and counts its own scrapes as endpoint=metrics", async () => {
    const s0 = await scrape(tug.url);
    const s1 = await scrape(tug.url);
    expect(s1.get("tug_disk_budget_bytes")).toBe(tug.config.cache.maxSize);
    expect(s1.has("tug_redis_up")).toBe(false);
    expect(d(s0, s1, "tug_http_requests_total", { endpoint: "metrics", method: "GET", status: "200" })).toBe(1);
  });

  it("every metric follows Prometheus naming: tug_ prefix; counters end in _total; units in _bytes or _seconds", async () => {
    const m = new Metrics();
    const all = await m.registry.getMetricsAsJSON();
    expect(all.length).toBeGreaterThan(15);
    for (const metric of all) {
      expect(metric.name).toMatch(/^tug_[a-z0-9_]+$/);
      if (String(metric.type) === "counter") expect(metric.name).toMatch(/_total$/);
      if (String(metric.type) === "histogram") expect(metric.name).toMatch(/_seconds$/);
      if (/bytes/.test(metric.name)) expect(metric.name).toMatch(/_bytes(_total)?$/);
      expect(metric.help.length).toBeGreaterThan(10);
    }
  });
});
