// Disk full (ENOSPC) during a fill, on a real filesystem that fills up: tug
// runs in a private mount namespace with a 4 MiB tmpfs as its data dir
// (unshare + mount, as root). A blob that no longer fits is still delivered
// whole and verified (passed through, not cached), eviction is triggered,
// nothing partial stays, and the next request caches it in the room made.
import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture, sha256 } from "../helpers/fixtures.js";
import { parseExposition } from "../helpers/metrics.js";
import { makeTempDir, waitUntil } from "../helpers/process.js";
import { spawnTug, type TugChild } from "../helpers/tug-process.js";

describe("ENOSPC during a fill (4 MiB tmpfs)", () => {
  let up: FaultServer;
  let tug: TugChild | undefined;
  afterEach(async () => {
    if (tug && tug.child.exitCode === null) tug.child.kill("SIGKILL");
    await up?.close();
  });

  it("passes the blob through whole, caches nothing partial, evicts, and caches it next time", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test mounts a tmpfs in a private mount namespace: run it as root (CI does)");
    const a = makeFixture(2_500 * 1024);
    const b = makeFixture(3 * 1024 * 1024);
    const A = `/v2/library/alpine/blobs/${a.blobDigest}`;
    const B = `/v2/library/alpine/blobs/${b.blobDigest}`;
    up = await startFaultServer();
    up.on(A, { kind: "bytes", body: a.blob });
    up.on(B, { kind: "bytes", body: b.blob });
    const dataDir = makeTempDir("enospc-data");
    tug = await spawnTug({ dataDir, tmpfsSize: "4m", config: { upstreams: { "docker.io": { url: up.url, default: true } }, cache: { maxSize: "1GiB" } } });
    // The tmpfs is visible only inside tug's mount namespace: look through /proc/<pid>/root.
    const inside = (p: string): string => join(`/proc/${tug!.pid}/root`, dataDir, p);
    const metrics = async (): Promise<Map<string, number>> => parseExposition(await (await fetch(`${tug!.url}/metrics`)).text());

    const first = await fetch(tug.url + A);
    expect(sha256(Buffer.from(await first.arrayBuffer()))).toBe(a.blobDigest);
    await waitUntil("A committed", async () => (await fetch(tug!.url + A, { method: "HEAD" })).headers.get("x-cache") === "HIT");

    // B does not fit next to A: the write fails half way, the client still gets every byte.
    const res = await fetch(tug.url + B);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(b.blob.length));
    const got = Buffer.from(await res.arrayBuffer());
    expect(got.length).toBe(b.blob.length);
    expect(sha256(got)).toBe(b.blobDigest);
    // The warning is written before the last byte is sent, but reaches us through tug's stdout pipe, which races the socket.
    await waitUntil("the disk-full warning in tug's log", () => tug!.lines().some((l) => String(l["msg"]).includes("disk full during a fill")), { timeoutMs: 5_000 });
    expect(tug.lines().some((l) => String(l["msg"]).includes("disk full during a fill"))).toBe(true);

    // Eviction ran (A, the least recently used, went); nothing partial stayed.
    await waitUntil("eviction", async () => ((await metrics()).get('tug_evictions_total{kind="blob"}') ?? 0) >= 1);
    await waitUntil("temp files gone", async () => (await readdir(inside("tmp"))).length === 0);
    const onDisk = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const p of await readdir(inside("blobs/sha256")).catch(() => [])) out.push(...(await readdir(inside(`blobs/sha256/${p}`))));
      return out;
    };
    expect(await onDisk()).toEqual([]);

    // Room was made: the next request caches B (verified), the one after is a hit.
    const again = await fetch(tug.url + B);
    expect(again.headers.get("x-cache")).toBe("MISS");
    expect(sha256(Buffer.from(await again.arrayBuffer()))).toBe(b.blobDigest);
    await waitUntil("B committed", async () => (await onDisk()).includes(b.blobDigest.slice(7)));
    const file = await readFile(inside(`blobs/sha256/${b.blobDigest.slice(7, 9)}/${b.blobDigest.slice(7)}`));
    expect(createHash("sha256").update(file).digest("hex")).toBe(b.blobDigest.slice(7));
    const hit = await fetch(tug.url + B);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(sha256(Buffer.from(await hit.arrayBuffer()))).toBe(b.blobDigest);
    expect((await metrics()).get("tug_disk_usage_bytes")).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(up.count({ method: "GET", pathIncludes: B })).toBe(2);
  });
});
