// The guard in front of each upstream: the circuit breaker (unit, with a fake
// clock and its log lines; then through a running tug against a failing
// upstream, counting what reaches it) and the per-upstream concurrency cap
// (requests beyond it wait in a queue and all succeed).
import type { IncomingMessage, ServerResponse } from "node:http";
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../src/upstream/circuit-breaker.js";
import { RegistryError } from "../../src/oci/errors.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture, sha256 } from "../helpers/fixtures.js";
import { key, scrape } from "../helpers/metrics.js";
import { waitUntil } from "../helpers/process.js";
import { startTug, type TestTug } from "../helpers/tug.js";

function captureLogger(): { logger: Logger; messages: () => string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split("\n").filter(Boolean));
      cb();
    },
  });
  return { logger: pino({ level: "info" }, sink), messages: () => lines.map((l) => (JSON.parse(l) as { msg: string }).msg) };
}

describe("CircuitBreaker", () => {
  it("opens after N consecutive failures, fails fast during the cool-off, lets one trial through, and logs each transition once", () => {
    let t = 0;
    const { logger, messages } = captureLogger();
    const states: boolean[] = [];
    const b = new CircuitBreaker({ upstream: "docker.io", failures: 3, coolOffMs: 30_000, now: () => t, logger, onChange: (up) => states.push(up) });
    const fail = new RegistryError("UNAVAILABLE", "boom");
    for (let i = 0; i < 2; i++) {
      b.admit();
      b.failure(fail);
    }
    b.admit();
    b.success(); // a success resets the count: failures must be consecutive
    for (let i = 0; i < 3; i++) {
      expect(b.admit()).toBe(false);
      b.failure(fail);
    }
    expect(b.state).toBe("open");
    let thrown: unknown;
    try {
      b.admit();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(RegistryError);
    expect((thrown as RegistryError).status).toBe(503);
    expect((thrown as RegistryError).headers["Retry-After"]).toBe("30");
    t += 30_000;
    expect(b.admit()).toBe(true); // the trial
    expect(() => b.admit()).toThrow(RegistryError); // others still fail fast while it runs
    b.failure(fail); // trial failed: down for another cool-off, no new log line
    expect(b.state).toBe("open");
    t += 29_999;
    expect(() => b.admit()).toThrow(RegistryError);
    t += 1;
    expect(b.admit()).toBe(true);
    b.success();
    expect(b.state).toBe("closed");
    expect(b.admit()).toBe(false);
    expect(messages().filter((m) => m.includes("marked down"))).toHaveLength(1);
    expect(messages().filter((m) => m.includes("back up"))).toHaveLength(1);
    expect(states).toEqual([true, false, true]);
  });

  it("an upstream that was rate limiting stays a 429 with Retry-After while marked down", () => {
    const b = new CircuitBreaker({ upstream: "docker.io", failures: 1, coolOffMs: 10_000, now: () => 0, logger: pino({ level: "silent" }) });
    b.admit();
    b.failure(new RegistryError("TOOMANYREQUESTS", "slow down"));
    try {
      b.admit();
      expect.unreachable();
    } catch (err) {
      expect((err as RegistryError).status).toBe(429);
      expect((err as RegistryError).headers["Retry-After"]).toBe("10");
    }
  });
});

describe("through a running tug", () => {
  let up: FaultServer;
  let tug: TestTug;
  afterEach(async () => {
    await tug?.stop();
    await up?.close();
  });

  it("after N failures the upstream is not contacted for the cool-off; stale tags and cached blobs are served at once", async () => {
    const fx = makeFixture(64 * 1024);
    const M = "/v2/library/alpine/manifests/3.20";
    const B = `/v2/library/alpine/blobs/${fx.blobDigest}`;
    up = await startFaultServer();
    up.on(M, { kind: "bytes", body: fx.manifest, headers: { "content-type": fx.mediaType, "docker-content-digest": fx.manifestDigest } });
    up.on(B, { kind: "bytes", body: fx.blob });
    tug = await startTug({
      upstreams: { "docker.io": up.url },
      cache: { tagTTL: "10s" },
      extra: { resilience: { breakerFailures: "3", breakerCoolOff: "60s", negativeTTL: "0s" } },
    });
    await (await fetch(tug.url + M)).arrayBuffer();
    await (await fetch(tug.url + B)).arrayBuffer();
    const upKey = key("tug_upstream_up", { upstream: "docker.io" });
    expect((await scrape(tug.url)).get(upKey)).toBe(1);

    // Three uncached blobs at a failing upstream: three upstream requests, three 503s.
    const others = [1, 2, 3, 4, 5].map((i) => `/v2/library/alpine/blobs/sha256:${String(i).repeat(64)}`);
    for (const p of others) up.on(p, { kind: "status", status: 503 });
    const seen = up.requests.length;
    for (const p of others.slice(0, 3)) expect((await fetch(tug.url + p)).status).toBe(503);
    expect(up.requests.length).toBe(seen + 3);
    expect((await scrape(tug.url)).get(upKey)).toBe(0);

    // Marked down: fail fast with Retry-After, nothing reaches the upstream.
    const t0 = Date.now();
    const fast = await fetch(tug.url + others[3]!);
    expect(fast.status).toBe(503);
    expect(fast.headers.get("retry-after")).toBe("60");
    expect(Date.now() - t0).toBeLessThan(200);
    tug.advance(10_001); // the tag is past tagTTL now, the cool-off is not over
    const stale = await fetch(tug.url + M);
    expect(stale.headers.get("x-cache")).toBe("STALE");
    await stale.arrayBuffer();
    const hit = await fetch(tug.url + B);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    await hit.arrayBuffer();
    expect(up.requests.length).toBe(seen + 3);
    const samples = await scrape(tug.url);
    expect(samples.get(key("tug_upstream_short_circuits_total", { upstream: "docker.io", reason: "breaker_open" }))).toBeGreaterThanOrEqual(2);

    // After the cool-off, one trial goes through; the upstream answers, the breaker closes.
    tug.advance(50_000);
    const back = await fetch(tug.url + M);
    expect(back.status).toBe(200);
    expect(back.headers.get("x-cache")).toBe("REVALIDATED");
    await back.arrayBuffer();
    expect((await scrape(tug.url)).get(upKey)).toBe(1);
    expect(up.requests.length).toBe(seen + 4);
  });

  it("caps concurrent upstream fetches per upstream: the rest queue and all succeed", async () => {
    up = await startFaultServer();
    const blobs = Array.from({ length: 6 }, (_, i) => makeFixture(32 * 1024 + i));
    const held: Array<() => void> = [];
    let active = 0;
    let maxActive = 0;
    for (const f of blobs) {
      up.on(`/v2/library/alpine/blobs/${f.blobDigest}`, {
        kind: "handler",
        fn: (_req: IncomingMessage, res: ServerResponse) => {
          active++;
          maxActive = Math.max(maxActive, active);
          held.push(() => {
            res.writeHead(200, { "content-length": String(f.blob.length) });
            res.end(f.blob, () => active--);
          });
        },
      });
    }
    tug = await startTug({ upstreams: { "docker.io": up.url }, extra: { resilience: { upstreamConcurrency: "2" } } });
    const pulls = blobs.map(async (f) => {
      const res = await fetch(`${tug.url}/v2/library/alpine/blobs/${f.blobDigest}`);
      return { status: res.status, digest: sha256(Buffer.from(await res.arrayBuffer())), want: f.blobDigest };
    });
    const queuedKey = key("tug_upstream_queued_requests", { upstream: "docker.io" });
    await waitUntil("two upstream requests held, four queued", async () => held.length === 2 && (await scrape(tug.url)).get(queuedKey) === 4);
    expect(up.requests.length).toBe(2);
    // Each answer frees a slot for the next queued request, until all are through.
    for (let released = 0; released < blobs.length; released++) {
      await waitUntil("next request", () => held.length > released);
      held[released]!();
    }
    const results = await Promise.all(pulls);
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.digest).toBe(r.want);
    }
    expect(maxActive).toBe(2);
    expect(up.requests.length).toBe(6);
    expect((await scrape(tug.url)).get(queuedKey)).toBe(0);
  });
});
