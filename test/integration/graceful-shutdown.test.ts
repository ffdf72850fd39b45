// SIGTERM to a real tug process: it stops accepting at once, lets the response
// in flight finish (and with it the fill, which is cached), and exits 0; with
// a fill that cannot finish within limits.shutdownGrace, it cuts it at the
// deadline, removes its temp file (nothing partial stays) and still exits 0.
import { readdir } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture, readBody, sha256 } from "../helpers/fixtures.js";
import { makeTempDir, waitUntil } from "../helpers/process.js";
import { spawnTug, type TugChild } from "../helpers/tug-process.js";

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ECONNREFUSED"));
  });
}

describe("SIGTERM", () => {
  let up: FaultServer;
  const children: TugChild[] = [];
  afterEach(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL");
    await up?.close();
  });

  it("stops accepting, finishes the download in flight, caches it, exits 0", async () => {
    const fx = makeFixture(4 * 1024 * 1024);
    const B = `/v2/library/alpine/blobs/${fx.blobDigest}`;
    up = await startFaultServer();
    up.on(B, { kind: "trickle", body: fx.blob, chunk: 64 * 1024, everyMs: 20 }); // ~1.3 s
    const dataDir = makeTempDir("term-data");
    const config = { upstreams: { "docker.io": { url: up.url, default: true } }, limits: { shutdownGrace: "20s" } };
    const tug = await spawnTug({ dataDir, config });
    children.push(tug);
    const res = await fetch(tug.url + B);
    expect(res.status).toBe(200);
    const body = readBody(res);
    const t0 = Date.now();
    tug.child.kill("SIGTERM");
    await waitUntil("new connections refused", () => refused(tug.port), { timeoutMs: 5_000 });
    const got = await body;
    expect(got.error).toBeUndefined();
    expect(sha256(got.bytes)).toBe(fx.blobDigest);
    const exit = await tug.exited;
    expect(exit.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(tug.lines().some((l) => l["msg"] === "shut down cleanly")).toBe(true);
    expect(await readdir(join(dataDir, "tmp"))).toEqual([]);

    // The fill completed before exit: a restarted tug has it, with no upstream request.
    const seen = up.count({ pathIncludes: B });
    const again = await spawnTug({ dataDir, config });
    children.push(again);
    const hit = await fetch(again.url + B);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(sha256(Buffer.from(await hit.arrayBuffer()))).toBe(fx.blobDigest);
    expect(up.count({ pathIncludes: B })).toBe(seen);
    again.child.kill("SIGTERM");
    expect((await again.exited).code).toBe(0);
  });

  it("cuts a fill that cannot finish by the deadline, leaves no temp file, exits 0", async () => {
    const fx = makeFixture(2 * 1024 * 1024);
    const B = `/v2/library/alpine/blobs/${fx.blobDigest}`;
    up = await startFaultServer();
    // Half the body, then silence (shorter than timeouts.body would notice).
    up.on(B, {
      kind: "handler",
      fn: (_req, res) => {
        res.writeHead(200, { "content-length": String(fx.blob.length) });
        res.write(fx.blob.subarray(0, fx.blob.length / 2));
      },
    });
    const dataDir = makeTempDir("term-data");
    const tug = await spawnTug({ dataDir, config: { upstreams: { "docker.io": { url: up.url, default: true } }, limits: { shutdownGrace: "1s" }, timeouts: { body: "60s" } } });
    children.push(tug);
    const res = await fetch(tug.url + B);
    const body = readBody(res);
    await waitUntil("fill under way", async () => (await readdir(join(dataDir, "tmp"))).length > 0);
    const t0 = Date.now();
    tug.child.kill("SIGTERM");
    const exit = await tug.exited;
    const ms = Date.now() - t0;
    expect(exit.code).toBe(0);
    expect(ms).toBeLessThan(8_000); // without the deadline the stuck fill would hold it for timeouts.body (60 s)
    const got = await body;
    expect(got.error).toBeDefined(); // cut, never a clean end of a partial blob
    expect(await readdir(join(dataDir, "tmp"))).toEqual([]);
    expect(await readdir(join(dataDir, "blobs")).catch(() => [])).toEqual([]);
    console.log(`SIGTERM with a stuck fill and shutdownGrace 1s: exited 0 after ${ms} ms`);
  });
});
