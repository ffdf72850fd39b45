// The pull-through rules against a scripted upstream: what is cached, when the
// upstream is asked, and that nothing wrong is ever cached or served cleanly.
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture, readBody, sha256 } from "../helpers/fixtures.js";
import { startTug, type TestTug } from "../helpers/tug.js";

let up: FaultServer;
let tug: TestTug;
const fx = makeFixture(512 * 1024);
const M = "/v2/library/alpine/manifests/3.20";
const B = `/v2/library/alpine/blobs/${fx.blobDigest}`;

beforeEach(async () => {
  up = await startFaultServer();
  tug = await startTug({ upstreams: { "docker.io": up.url }, cache: { tagTTL: "5m", staleIfError: "1h" } });
});
afterEach(async () => {
  await tug.stop();
  await up.close();
});

function serveManifest(body = fx.manifest): void {
  up.on(M, { kind: "bytes", body, headers: { "content-type": fx.mediaType, "docker-content-digest": sha256(body) } });
}

async function tempFiles(): Promise<string[]> {
  return readdir(join(tug.dataDir, "tmp")).catch(() => []);
}

describe("manifests by tag", () => {
  it("within tagTTL a second pull makes no upstream request; after it, one HEAD revalidates", async () => {
    serveManifest();
    const first = await fetch(tug.url + M);
    expect(first.headers.get("x-cache")).toBe("MISS");
    await first.arrayBuffer();
    const second = await fetch(tug.url + M);
    expect(second.headers.get("x-cache")).toBe("HIT");
    expect(Buffer.from(await second.arrayBuffer()).equals(fx.manifest)).toBe(true);
    expect(up.count({ pathIncludes: "/manifests/" })).toBe(1);

    tug.advance(5 * 60_000 + 1);
    const third = await fetch(tug.url + M);
    expect(third.headers.get("x-cache")).toBe("REVALIDATED");
    await third.arrayBuffer();
    expect(up.count({ method: "HEAD", pathIncludes: "/manifests/" })).toBe(1);
    expect(up.count({ method: "GET", pathIncludes: "/manifests/" })).toBe(1);
    // fresh again after the HEAD
    await (await fetch(tug.url + M)).arrayBuffer();
    expect(up.count({ pathIncludes: "/manifests/" })).toBe(2);
  });

  it("always sends the full Accept list upstream", async () => {
    serveManifest();
    await (await fetch(tug.url + M, { headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" } })).arrayBuffer();
    const accept = String(up.requests.find((r) => r.path === M)?.headers["accept"]);
    for (const t of ["oci.image.index.v1", "oci.image.manifest.v1", "manifest.list.v2", "distribution.manifest.v2"]) expect(accept).toContain(t);
  });

  it("a changed tag is fetched anew after tagTTL", async () => {
    serveManifest();
    await (await fetch(tug.url + M)).arrayBuffer();
    const other = Buffer.from(fx.manifest.toString().replace('"schemaVersion":2', '"schemaVersion":2,"annotations":{"v":"2"}'));
    serveManifest(other);
    tug.advance(5 * 60_000 + 1);
    const res = await fetch(tug.url + M);
    expect(res.headers.get("docker-content-digest")).toBe(sha256(other));
    expect(Buffer.from(await res.arrayBuffer()).equals(other)).toBe(true);
  });

  it.each([
    ["503", { kind: "status", status: 503 } as const],
    ["429", { kind: "status", status: 429, headers: { "retry-after": "30" } } as const],
    ["refused connection", undefined],
  ])("a stale tag is served when the upstream fails (%s), marked STALE", async (_name, fault) => {
    serveManifest();
    await (await fetch(tug.url + M)).arrayBuffer();
    tug.advance(5 * 60_000 + 1);
    if (fault) up.on(M, fault);
    else await up.close();
    const res = await fetch(tug.url + M);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-cache")).toBe("STALE");
    expect(Buffer.from(await res.arrayBuffer()).equals(fx.manifest)).toBe(true);
    if (!fault) up = await startFaultServer(); // for afterEach
  });

  it("beyond staleIfError the upstream's failure is the answer", async () => {
    serveManifest();
    await (await fetch(tug.url + M)).arrayBuffer();
    tug.advance(5 * 60_000 + 60 * 60_000 + 1);
    up.on(M, { kind: "status", status: 503 });
    const res = await fetch(tug.url + M);
    expect(res.status).toBe(503);
    expect((await res.json()).errors[0].code).toBe("UNAVAILABLE");
  });

  it("an uncached tag at a rate-limiting upstream is 429 with Retry-After", async () => {
    up.on(M, { kind: "status", status: 429, headers: { "retry-after": "42" } });
    const res = await fetch(tug.url + M);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("42");
    expect((await res.json()).errors[0].code).toBe("TOOMANYREQUESTS");
  });

  it("a HEAD miss on a tag fetches and stores the full manifest", async () => {
    serveManifest();
    const head = await fetch(tug.url + M, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("docker-content-digest")).toBe(fx.manifestDigest);
    expect(up.count({ method: "GET", pathIncludes: "/manifests/" })).toBe(1);
    const byDigest = await fetch(tug.url + `/v2/library/alpine/manifests/${fx.manifestDigest}`);
    expect(byDigest.headers.get("x-cache")).toBe("HIT");
    expect(Buffer.from(await byDigest.arrayBuffer()).equals(fx.manifest)).toBe(true);
  });

  it("manifests over 4 MiB are refused and not cached", async () => {
    const huge = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
    up.on(M, { kind: "bytes", body: huge, headers: { "content-type": fx.mediaType } });
    const res = await fetch(tug.url + M);
    expect(res.status).toBe(502);
    expect((await res.json()).errors[0].code).toBe("MANIFEST_INVALID");
    // chunked (no Content-Length): refused while reading
    up.on(M, {
      kind: "handler",
      fn: (_req, r) => {
        r.writeHead(200, { "content-type": fx.mediaType });
        for (let i = 0; i < 5; i++) r.write(Buffer.alloc(1024 * 1024, 0x20));
        r.end();
      },
    });
    const res2 = await fetch(tug.url + M);
    expect(res2.status).toBe(502);
  });

  it("an upstream 404 on a tag does not remove the cached digest", async () => {
    serveManifest();
    await (await fetch(tug.url + M)).arrayBuffer();
    tug.advance(5 * 60_000 + 1);
    up.on(M, { kind: "status", status: 404 });
    expect((await fetch(tug.url + M)).status).toBe(404);
    const byDigest = await fetch(tug.url + `/v2/library/alpine/manifests/${fx.manifestDigest}`);
    expect(byDigest.status).toBe(200);
    await byDigest.arrayBuffer();
  });
});

describe("manifests by digest", () => {
  it("are verified against the digest: wrong bytes are refused and not cached", async () => {
    const path = `/v2/library/alpine/manifests/${fx.manifestDigest}`;
    up.on(path, { kind: "bytes", body: Buffer.from(fx.manifest.toString() + " "), headers: { "content-type": fx.mediaType } });
    const bad = await fetch(tug.url + path);
    expect(bad.status).toBe(502);
    await bad.arrayBuffer();
    up.on(path, { kind: "bytes", body: fx.manifest, headers: { "content-type": fx.mediaType } });
    const good = await fetch(tug.url + path);
    expect(good.status).toBe(200);
    expect(good.headers.get("x-cache")).toBe("MISS");
    await good.arrayBuffer();
    const again = await fetch(tug.url + path);
    expect(again.headers.get("x-cache")).toBe("HIT");
    await again.arrayBuffer();
    expect(up.count({ pathIncludes: fx.manifestDigest })).toBe(2);
  });
});

describe("blobs", () => {
  it("a miss streams, is verified, cached; the next pull is a hit with zero upstream requests", async () => {
    up.on(B, { kind: "bytes", body: fx.blob });
    const miss = await fetch(tug.url + B);
    expect(miss.status).toBe(200);
    expect(miss.headers.get("content-length")).toBe(String(fx.blob.length));
    expect(miss.headers.get("docker-content-digest")).toBe(fx.blobDigest);
    expect(miss.headers.get("x-cache")).toBe("MISS");
    expect(sha256(Buffer.from(await miss.arrayBuffer()))).toBe(fx.blobDigest);
    const hit = await fetch(tug.url + B);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(sha256(Buffer.from(await hit.arrayBuffer()))).toBe(fx.blobDigest);
    expect(up.count({ pathIncludes: "/blobs/" })).toBe(1);
  });

  it("20 concurrent GETs of one uncached blob make one upstream GET; all bodies are right", async () => {
    up.on(B, { kind: "trickle", body: fx.blob, chunk: 64 * 1024, everyMs: 5 });
    const bodies = await Promise.all(Array.from({ length: 20 }, async () => readBody(await fetch(tug.url + B))));
    for (const b of bodies) {
      expect(b.error).toBeUndefined();
      expect(sha256(b.bytes)).toBe(fx.blobDigest);
    }
    expect(up.count({ method: "GET", pathIncludes: "/blobs/" })).toBe(1);
  });

  it("a body cut short is never a clean 200 (an error status, or a cut once bytes were sent) and caches nothing", async () => {
    up.on(B, { kind: "truncate", body: fx.blob, after: fx.blob.length / 2 });
    const res = await fetch(tug.url + B);
    const got = await readBody(res);
    if (res.status === 200) expect(got.error).toBeDefined();
    else expect(res.status).toBeGreaterThanOrEqual(500);
    expect(got.bytes.length).toBeLessThan(fx.blob.length);
    up.on(B, { kind: "bytes", body: fx.blob });
    const retry = await fetch(tug.url + B);
    expect(retry.headers.get("x-cache")).toBe("MISS");
    expect(sha256(Buffer.from(await retry.arrayBuffer()))).toBe(fx.blobDigest);
    expect(await tempFiles()).toEqual([]);
  });

  it("wrong bytes for a digest abort the client's response (never a clean 200) and cache nothing", async () => {
    const wrong = Buffer.from(fx.blob);
    wrong.writeUInt8(wrong.readUInt8(wrong.length - 1) ^ 0xff, wrong.length - 1);
    up.on(B, { kind: "bytes", body: wrong });
    const got = await readBody(await fetch(tug.url + B));
    expect(got.error).toBeDefined();
    expect(got.bytes.length).toBeLessThan(fx.blob.length);
    expect(await tempFiles()).toEqual([]);
    up.on(B, { kind: "bytes", body: fx.blob });
    const retry = await fetch(tug.url + B);
    expect(retry.headers.get("x-cache")).toBe("MISS");
    await retry.arrayBuffer();
  });

  it("429 for an uncached blob is passed on with Retry-After; nothing is cached", async () => {
    up.on(B, { kind: "status", status: 429, headers: { "retry-after": "7" } });
    const res = await fetch(tug.url + B);
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("7");
    expect((await res.json()).errors[0].code).toBe("TOOMANYREQUESTS");
    up.on(B, { kind: "bytes", body: fx.blob });
    // Remembered for resilience.negativeTTL (5s): a retry at once is answered without asking the upstream.
    const again = await fetch(tug.url + B);
    expect(again.status).toBe(429);
    await again.arrayBuffer();
    expect(up.count({ pathIncludes: "/blobs/" })).toBe(1);
    tug.advance(5_001);
    const retry = await fetch(tug.url + B);
    expect(retry.headers.get("x-cache")).toBe("MISS");
    await retry.arrayBuffer();
  });

  it("a client that leaves mid-download does not stop the fill: the next request is a hit", async () => {
    up.on(B, { kind: "trickle", body: fx.blob, chunk: 32 * 1024, everyMs: 5 });
    const ac = new AbortController();
    const res = await fetch(tug.url + B, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    // The fill goes on: wait for it through the store, not a sleep.
    const fill = tug.runtime.blobs.fillFor({ algorithm: "sha256", hex: fx.blobDigest.slice(7), value: fx.blobDigest });
    if (fill) await fill.finished;
    const hit = await fetch(tug.url + B);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(sha256(Buffer.from(await hit.arrayBuffer()))).toBe(fx.blobDigest);
    expect(up.count({ pathIncludes: "/blobs/" })).toBe(1);
  });

  it("Range on a hit is 206 with Content-Range; an unsatisfiable one 416", async () => {
    up.on(B, { kind: "bytes", body: fx.blob });
    await (await fetch(tug.url + B)).arrayBuffer();
    const part = await fetch(tug.url + B, { headers: { range: "bytes=10-19" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 10-19/${fx.blob.length}`);
    expect(part.headers.get("content-length")).toBe("10");
    expect(Buffer.from(await part.arrayBuffer()).equals(fx.blob.subarray(10, 20))).toBe(true);
    const bad = await fetch(tug.url + B, { headers: { range: `bytes=${fx.blob.length}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get("content-range")).toBe(`bytes */${fx.blob.length}`);
    await bad.arrayBuffer();
  });

  it("Range on a miss is served from the growing file", async () => {
    up.on(B, { kind: "bytes", body: fx.blob });
    const part = await fetch(tug.url + B, { headers: { range: "bytes=1000-1999" } });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(fx.blob.subarray(1000, 2000))).toBe(true);
  });

  it("HEAD of a miss asks the upstream with HEAD and caches nothing; HEAD of a hit has the length", async () => {
    up.on(B, { kind: "bytes", body: fx.blob });
    const head = await fetch(tug.url + B, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(fx.blob.length));
    expect(up.count({ method: "HEAD" })).toBe(1);
    expect(up.count({ method: "GET", pathIncludes: "/blobs/" })).toBe(0);
    await (await fetch(tug.url + B)).arrayBuffer();
    const head2 = await fetch(tug.url + B, { method: "HEAD" });
    expect(head2.headers.get("content-length")).toBe(String(fx.blob.length));
    expect(head2.headers.get("x-cache")).toBe("HIT");
  });

  it("an uncached blob at an unreachable upstream fails fast with 503", async () => {
    await up.close();
    const res = await fetch(tug.url + B);
    expect(res.status).toBe(503);
    expect((await res.json()).errors[0].code).toBe("UNAVAILABLE");
    up = await startFaultServer();
  });

  it("an upstream that never answers is 504 after the headers timeout", async () => {
    await tug.stop();
    tug = await startTug({ upstreams: { "docker.io": up.url }, timeouts: { headers: "300ms" } });
    up.on(B, { kind: "hang" });
    const res = await fetch(tug.url + B);
    expect(res.status).toBe(504);
    await res.arrayBuffer();
  });
});
