// The fault × state matrix (issue 5): for every upstream fault — refused
// connection, DNS failure, headers that never come, a 1 byte/s trickle, a body
// cut at half its Content-Length, wrong bytes for a digest, 500, 503, 429 with
// Retry-After — and every cache state: a cached tag is served stale (X-Cache:
// STALE and the stale metric), what is cached by digest is served with zero
// upstream contact, an uncached request fails fast and clearly, nothing wrong
// is cached, and a failure at the headers is remembered (negative cache) so
// the upstream is not asked again at once. Each fault gets a copy of one
// seeded data dir and a tug whose only upstream misbehaves that way.
import { cp, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFaultServer, type Behaviour, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture, readBody, sha256 } from "../helpers/fixtures.js";
import { scrape } from "../helpers/metrics.js";
import { freePort } from "../helpers/ports.js";
import { startTug, tempDir, type TestTug } from "../helpers/tug.js";

const cached = makeFixture(256 * 1024);
const uncached = makeFixture(256 * 1024);
const TAG = "/v2/library/alpine/manifests/3.20";
const NEW_TAG = "/v2/library/alpine/manifests/3.21";
const BY_DIGEST = `/v2/library/alpine/manifests/${cached.manifestDigest}`;
const BLOB = `/v2/library/alpine/blobs/${cached.blobDigest}`;
const NEW_BLOB = `/v2/library/alpine/blobs/${uncached.blobDigest}`;

const TIMEOUTS = { connect: "1s", headers: "500ms", body: "5s", fill: "500ms" }; // body > manifestTimeout: the trickle meets manifestTimeout
const RESILIENCE = { manifestTimeout: "1s", negativeTTL: "5s", breakerFailures: "0" };
/** Generous ceiling for "fails fast": the longest configured timeout plus scheduling slack. */
const FAST_MS = 4_000;

type FaultName = "refused" | "dns" | "hang" | "trickle" | "truncate" | "wrong-bytes" | "500" | "503" | "429";

interface Expectation {
  /** Status of the uncached tag request. */
  manifestStatus: number;
  /**
   * Uncached blob: a status, or "cut" (200 headers, then the body is aborted:
   * never a clean 200). A body cut before tug wrote its first batch
   * (WRITE_BATCH_MS) is a status, after that a cut: either is right.
   */
  blob: number | "cut" | { cutOr: number };
  /** Failure at the headers: remembered by the negative cache. */
  negative: boolean;
}

const EXPECT: Record<FaultName, Expectation> = {
  refused: { manifestStatus: 503, blob: 503, negative: true },
  dns: { manifestStatus: 503, blob: 503, negative: true },
  hang: { manifestStatus: 504, blob: 504, negative: true },
  trickle: { manifestStatus: 504, blob: 504, negative: false },
  truncate: { manifestStatus: 503, blob: { cutOr: 503 }, negative: false },
  "wrong-bytes": { manifestStatus: 502, blob: "cut", negative: false },
  "500": { manifestStatus: 502, blob: 502, negative: true },
  "503": { manifestStatus: 503, blob: 503, negative: true },
  "429": { manifestStatus: 429, blob: 429, negative: true },
};

function manifestHeaders(f: typeof cached): Record<string, string> {
  return { "content-type": f.mediaType, "docker-content-digest": f.manifestDigest };
}

function flip(b: Buffer): Buffer {
  const w = Buffer.from(b);
  w[w.length - 1] = w[w.length - 1]! ^ 0xff;
  return w;
}

/** Scripts every path of the fault server with one fault. */
function script(up: FaultServer, fault: FaultName): void {
  for (const [path, f, kind] of [
    [TAG, cached, "manifest"],
    [NEW_TAG, uncached, "manifest"],
    [BY_DIGEST, cached, "manifest"],
    [BLOB, cached, "blob"],
    [NEW_BLOB, uncached, "blob"],
  ] as const) {
    const body = kind === "manifest" ? f.manifest : f.blob;
    const headers = kind === "manifest" ? manifestHeaders(f) : {};
    let b: Behaviour;
    switch (fault) {
      case "hang":
        b = { kind: "hang" };
        break;
      case "trickle":
        // 1 byte per second; HEAD gets no digest header, so a tag must be fetched.
        b = { kind: "trickle", body, chunk: 1, everyMs: 1000, headers: kind === "manifest" ? { "content-type": f.mediaType } : {} };
        break;
      case "truncate":
        b = { kind: "truncate", body, after: Math.floor(body.length / 2), headers: kind === "manifest" ? { "content-type": f.mediaType } : {} };
        break;
      case "wrong-bytes":
        // Manifests claim a digest (another one than cached, so a HEAD does not revalidate) their bytes do not have.
        b = { kind: "bytes", body: flip(body), headers: kind === "manifest" ? manifestHeaders(uncached) : {} };
        break;
      case "429":
        b = { kind: "status", status: 429, headers: { "retry-after": "42" } };
        break;
      default:
        b = { kind: "status", status: Number(fault) };
    }
    up.on(path, b);
  }
}

function sampleSum(samples: Map<string, number>, name: string, labelPart = ""): number {
  let n = 0;
  for (const [k, v] of samples) if ((k === name || k.startsWith(`${name}{`)) && k.includes(labelPart)) n += v;
  return n;
}

let template: string;
const rows: string[] = [];

beforeAll(async () => {
  // Seed one data dir through a healthy upstream: a tag, its manifest by digest, one blob.
  const good = await startFaultServer();
  good.on(TAG, { kind: "bytes", body: cached.manifest, headers: manifestHeaders(cached) });
  good.on(BLOB, { kind: "bytes", body: cached.blob });
  template = await tempDir("tug-matrix-");
  const seeder = await startTug({ upstreams: { "docker.io": good.url }, dataDir: template });
  await (await fetch(seeder.url + TAG)).arrayBuffer();
  await (await fetch(seeder.url + BLOB)).arrayBuffer();
  await seeder.stop();
  await good.close();
});

afterAll(async () => {
  await rm(template, { recursive: true, force: true });
  // The matrix, for the report (vitest prints console output).
  console.log(["fault        | stale tag | cached digests | uncached tag | uncached blob | nothing cached | negative cache", ...rows].join("\n"));
});

describe("fault × state matrix", () => {
  it.each(Object.keys(EXPECT) as FaultName[])("%s", async (fault) => {
    const want = EXPECT[fault];
    let up: FaultServer | undefined;
    let url: string;
    if (fault === "refused") url = `http://127.0.0.1:${await freePort()}`;
    else if (fault === "dns") url = "http://tug-fault-test.invalid:5000"; // RFC 6761: never resolves
    else {
      up = await startFaultServer();
      script(up, fault);
      url = up.url;
    }
    const dataDir = await tempDir("tug-matrix-case-");
    await cp(template, dataDir, { recursive: true });
    const tug: TestTug = await startTug({
      upstreams: { "docker.io": url },
      dataDir,
      cache: { tagTTL: "5m", staleIfError: "1h" },
      timeouts: TIMEOUTS,
      extra: { resilience: RESILIENCE },
    });
    const upstreamRequests = async (): Promise<number> => sampleSum(await scrape(tug.url), "tug_upstream_requests_total");
    try {
      // 1. cached tag, past tagTTL: served stale, marked in the header and the metrics.
      tug.advance(5 * 60_000 + 1);
      const t0 = Date.now();
      const stale = await fetch(tug.url + TAG);
      const staleMs = Date.now() - t0;
      expect(stale.status).toBe(200);
      expect(stale.headers.get("x-cache")).toBe("STALE");
      expect(Buffer.from(await stale.arrayBuffer()).equals(cached.manifest)).toBe(true);
      expect(sampleSum(await scrape(tug.url), "tug_cache_requests_total", 'outcome="stale"')).toBe(1);
      expect(staleMs).toBeLessThan(FAST_MS);

      // 2. cached by digest: zero upstream contact.
      const before = await upstreamRequests();
      const seen = up?.requests.length ?? 0;
      const m = await fetch(tug.url + BY_DIGEST);
      expect(m.status).toBe(200);
      expect(m.headers.get("x-cache")).toBe("HIT");
      expect(Buffer.from(await m.arrayBuffer()).equals(cached.manifest)).toBe(true);
      const b = await fetch(tug.url + BLOB);
      expect(b.headers.get("x-cache")).toBe("HIT");
      expect(sha256(Buffer.from(await b.arrayBuffer()))).toBe(cached.blobDigest);
      expect(await upstreamRequests()).toBe(before);
      expect(up?.requests.length ?? 0).toBe(seen);

      // 3. uncached: fails fast and clearly.
      const t1 = Date.now();
      const miss = await fetch(tug.url + NEW_TAG);
      const missMs = Date.now() - t1;
      expect(miss.status).toBe(want.manifestStatus);
      const err = (await miss.json()) as { errors: Array<{ code: string }> };
      expect(err.errors[0]?.code).toBe(fault === "429" ? "TOOMANYREQUESTS" : "UNAVAILABLE");
      if (fault === "429") expect(miss.headers.get("retry-after")).toBe("42");
      expect(missMs).toBeLessThan(FAST_MS);

      const t2 = Date.now();
      const blobMiss = await fetch(tug.url + NEW_BLOB);
      let blobOutcome: string;
      const expected = typeof want.blob === "object" ? (blobMiss.status === 200 ? "cut" : want.blob.cutOr) : want.blob;
      if (expected === "cut") {
        expect(blobMiss.status).toBe(200);
        const got = await readBody(blobMiss);
        expect(got.error).toBeDefined(); // never a clean 200 of wrong or partial bytes
        expect(got.bytes.length).toBeLessThan(uncached.blob.length);
        blobOutcome = "200, body cut";
      } else {
        expect(blobMiss.status).toBe(expected);
        await blobMiss.arrayBuffer();
        blobOutcome = String(expected);
      }
      const blobMs = Date.now() - t2;
      expect(blobMs).toBeLessThan(FAST_MS);

      // 4. nothing wrong is cached: no temp files, no new content, no tag record for the new tag.
      const fills = tug.runtime.blobs.fillFor({ algorithm: "sha256", hex: uncached.blobDigest.slice(7), value: uncached.blobDigest });
      if (fills) await fills.finished.catch(() => undefined);
      expect(await readdir(join(dataDir, "tmp"))).toEqual([]);
      expect(await tug.runtime.blobs.stat({ algorithm: "sha256", hex: uncached.blobDigest.slice(7), value: uncached.blobDigest })).toBeUndefined();
      expect(await readdir(join(dataDir, "repositories", "docker.io", "library", "alpine", "_tags"))).toEqual(["3.20.json"]);
      expect(await readdir(join(dataDir, "manifests", "sha256"))).toEqual([cached.manifestDigest.slice(7, 9)]);

      // 5. negative cache: a failure at the headers is answered again without asking the upstream.
      const asked = await upstreamRequests();
      const again = await fetch(tug.url + NEW_TAG);
      await again.arrayBuffer();
      if (want.negative) {
        expect(again.status).toBe(want.manifestStatus);
        expect(await upstreamRequests()).toBe(asked);
        tug.advance(5_001); // past resilience.negativeTTL: asked again
        await (await fetch(tug.url + NEW_TAG)).arrayBuffer();
        expect(await upstreamRequests()).toBeGreaterThan(asked);
      } else {
        // A body failure after good headers is not remembered: the next request tries again.
        expect(await upstreamRequests()).toBeGreaterThan(asked);
      }
      rows.push(
        `${fault.padEnd(12)} | STALE ${String(staleMs).padStart(4)}ms | HIT, 0 upstream | ${want.manifestStatus} in ${String(missMs).padStart(4)}ms | ${blobOutcome} in ${blobMs}ms | yes | ${want.negative ? "yes" : "n/a (body fault)"}`,
      );
    } finally {
      await tug.stop();
      await up?.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
