// Load with a real tug process: 500 concurrent connections (wrk) on cached
// manifests (by tag and by digest) and a cached blob for 30 s (10 s under CI;
// TUG_LOAD_SECONDS overrides) with zero errors, tug's RSS sampled throughout;
// then 500 slow clients that request a 16 MiB blob and read nothing — cached,
// and following one fill of an uncached blob — while tug's memory stays
// bounded (small read buffers once many responses stream at once).
import { writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture, sha256 } from "../helpers/fixtures.js";
import { makeTempDir, requireBinary, run, waitUntil } from "../helpers/process.js";
import { spawnTug, type TugChild } from "../helpers/tug-process.js";

const SECONDS = Number(process.env["TUG_LOAD_SECONDS"] ?? (process.env["CI"] ? 10 : 30));
const CONNECTIONS = 500;
const MiB = 1 << 20;

describe("load", () => {
  let up: FaultServer;
  let tug: TugChild;
  const fx = makeFixture(MiB);
  const big = makeFixture(16 * MiB);
  const TAG = "/v2/library/alpine/manifests/3.20";
  const DIGEST = `/v2/library/alpine/manifests/${fx.manifestDigest}`;
  const BLOB = `/v2/library/alpine/blobs/${fx.blobDigest}`;
  const BIG = `/v2/library/alpine/blobs/${big.blobDigest}`;

  const dataDir = makeTempDir("load-data");
  const start = (): Promise<TugChild> =>
    spawnTug({ dataDir, config: { upstreams: { "docker.io": { url: up.url, default: true } }, log: { level: "warn" }, cache: { tagTTL: "1h" } } });

  beforeAll(async () => {
    up = await startFaultServer();
    up.on(TAG, { kind: "bytes", body: fx.manifest, headers: { "content-type": fx.mediaType, "docker-content-digest": fx.manifestDigest } });
    up.on(BLOB, { kind: "bytes", body: fx.blob });
    up.on(BIG, { kind: "bytes", body: big.blob });
    tug = await start();
    for (const p of [TAG, DIGEST, BLOB, BIG]) {
      const res = await fetch(tug.url + p);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    await waitUntil("blobs committed", async () => (await fetch(tug.url + BIG, { method: "HEAD" })).headers.get("x-cache") === "HIT");
  }, 60_000);

  afterAll(async () => {
    if (tug && tug.child.exitCode === null) tug.child.kill("SIGKILL");
    await up?.close();
  });

  it(`${CONNECTIONS} connections on cached manifests and blobs for ${SECONDS}s: zero errors, RSS reported`, async () => {
    const wrk = requireBinary("wrk");
    const script = join(makeTempDir("wrk"), "paths.lua");
    writeFileSync(
      script,
      [
        `local paths = { "${TAG}", "${DIGEST}", "${BLOB}" }`,
        "local i = 0",
        "request = function()",
        "  i = i + 1",
        "  return wrk.format('GET', paths[(i % #paths) + 1])",
        "end",
      ].join("\n"),
    );
    const baseline = tug.rss().rss;
    let peakSampled = 0;
    const sampler = setInterval(() => {
      peakSampled = Math.max(peakSampled, tug.rss().rss);
    }, 250);
    const t0 = Date.now();
    const { stdout } = await run(wrk, ["-t2", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--timeout", "30s", "--latency", "-s", script, tug.url], {
      timeoutMs: (SECONDS + 60) * 1000,
    });
    clearInterval(sampler);
    const elapsed = (Date.now() - t0) / 1000;
    const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
    const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
    const { rss, peak } = tug.rss();
    console.log(
      `wrk -c${CONNECTIONS} -d${SECONDS}s: ${requests} requests in ${elapsed.toFixed(1)} s; ` +
        `RSS before ${(baseline / MiB).toFixed(0)} MiB, peak sampled ${(peakSampled / MiB).toFixed(0)} MiB, VmHWM ${(peak / MiB).toFixed(0)} MiB, after ${(rss / MiB).toFixed(0)} MiB\n${stdout}`,
    );
    expect(requests).toBeGreaterThan(CONNECTIONS);
    expect(non2xx).toBe(0);
    expect(socketErrors).toBeNull(); // wrk prints the line only when there were errors
    expect(peak).toBeLessThan(512 * MiB);
    // Still healthy afterwards.
    const res = await fetch(tug.url + BLOB);
    expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(fx.blobDigest);
  }, (SECONDS + 90) * 1000);

  it(`${CONNECTIONS} slow clients on a 16 MiB cached blob: memory stays bounded`, async () => {
    // A fresh process on the same (warm) data dir, so the figure is not the load test's high-water mark.
    tug.child.kill("SIGTERM");
    await tug.exited;
    tug = await start();
    expect((await fetch(tug.url + BIG, { method: "HEAD" })).headers.get("x-cache")).toBe("HIT");
    const before = tug.rss().rss;
    const sockets: Socket[] = [];
    let firstBytes = 0;
    for (let i = 0; i < CONNECTIONS; i++) {
      const s = connect(tug.port, "127.0.0.1");
      s.on("error", () => undefined);
      s.once("data", () => {
        firstBytes++;
        s.pause(); // read nothing more: the kernel buffers fill, then tug must hold back
      });
      s.write(`GET ${BIG} HTTP/1.1\r\nHost: tug\r\n\r\n`);
      sockets.push(s);
    }
    await waitUntil("every slow client has its first bytes", () => firstBytes === CONNECTIONS, { timeoutMs: 30_000 });
    // Let the server push what it can; sample RSS while the buffers settle.
    let peak = 0;
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      peak = Math.max(peak, tug.rss().rss);
    }
    console.log(`${CONNECTIONS} slow clients on a 16 MiB blob: RSS ${(before / MiB).toFixed(0)} MiB before, peak ${(peak / MiB).toFixed(0)} MiB (+${((peak - before) / MiB).toFixed(0)} MiB)`);
    for (const s of sockets) s.destroy();
    expect(peak - before).toBeLessThan(256 * MiB);
    expect(peak).toBeLessThan(512 * MiB);
    const res = await fetch(tug.url + TAG);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }, 90_000);

  it(`${CONNECTIONS} slow clients following one fill of an uncached 16 MiB blob: one upstream GET, memory bounded`, async () => {
    const fresh = makeFixture(16 * MiB);
    const path = `/v2/library/alpine/blobs/${fresh.blobDigest}`;
    up.on(path, { kind: "trickle", body: fresh.blob, chunk: 256 * 1024, everyMs: 50 }); // ~3 s
    tug.child.kill("SIGTERM");
    await tug.exited;
    tug = await start();
    const before = tug.rss().rss;
    const sockets: Socket[] = [];
    let firstBytes = 0;
    for (let i = 0; i < CONNECTIONS; i++) {
      const s = connect(tug.port, "127.0.0.1");
      s.on("error", () => undefined);
      s.once("data", () => {
        firstBytes++;
        s.pause();
      });
      s.write(`GET ${path} HTTP/1.1\r\nHost: tug\r\n\r\n`);
      sockets.push(s);
    }
    await waitUntil("every follower has its first bytes", () => firstBytes === CONNECTIONS, { timeoutMs: 30_000 });
    await waitUntil("fill done", async () => (await fetch(tug.url + path, { method: "HEAD" })).headers.get("x-cache") === "HIT", { timeoutMs: 30_000 });
    let peak = 0;
    for (let i = 0; i < 10; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      peak = Math.max(peak, tug.rss().rss);
    }
    console.log(`${CONNECTIONS} slow followers of one 16 MiB fill: RSS ${(before / MiB).toFixed(0)} MiB before, peak ${(peak / MiB).toFixed(0)} MiB (+${((peak - before) / MiB).toFixed(0)} MiB); upstream GETs ${up.count({ method: "GET", pathIncludes: path })}`);
    for (const s of sockets) s.destroy();
    expect(up.count({ method: "GET", pathIncludes: path })).toBe(1);
    expect(peak - before).toBeLessThan(256 * MiB);
    expect(peak).toBeLessThan(512 * MiB);
  }, 90_000);

});
