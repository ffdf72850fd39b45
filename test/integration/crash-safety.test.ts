// Crash safety with a real process: tug is killed with SIGKILL in the middle of
// a fill from a throttled upstream, then restarted on the same data dir. No
// truncated or unverified file is ever served: every file under blobs/ and
// manifests/ matches its digest, tag records parse, the dead process's temp
// files are removed at start-up, and the interrupted blob is simply fetched
// again.
import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseTagRecord } from "../../src/cache/tag-store.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture, readBody, sha256 } from "../helpers/fixtures.js";
import { makeTempDir, waitUntil } from "../helpers/process.js";
import { spawnTug, type TugChild } from "../helpers/tug-process.js";

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(dir);
  return out;
}

describe("kill -9 during a fill", () => {
  let up: FaultServer;
  const children: TugChild[] = [];
  afterEach(async () => {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL");
    await up?.close();
  });

  it("leaves nothing unverified; restart removes the dead process's temp files and refetches", async () => {
    const small = makeFixture(128 * 1024);
    const big = makeFixture(8 * 1024 * 1024);
    const M = "/v2/library/alpine/manifests/3.20";
    const SMALL = `/v2/library/alpine/blobs/${small.blobDigest}`;
    const BIG = `/v2/library/alpine/blobs/${big.blobDigest}`;
    up = await startFaultServer();
    up.on(M, { kind: "bytes", body: small.manifest, headers: { "content-type": small.mediaType, "docker-content-digest": small.manifestDigest } });
    up.on(SMALL, { kind: "bytes", body: small.blob });
    up.on(BIG, { kind: "trickle", body: big.blob, chunk: 64 * 1024, everyMs: 20 }); // ~2.6 s in all
    const dataDir = makeTempDir("crash-data");
    const config = { upstreams: { "docker.io": { url: up.url, default: true } } };

    const first = await spawnTug({ dataDir, config });
    children.push(first);
    await (await fetch(first.url + M)).arrayBuffer();
    await (await fetch(first.url + SMALL)).arrayBuffer();
    const res = await fetch(first.url + BIG);
    expect(res.status).toBe(200);
    const body = readBody(res);
    // Kill once the temp file holds a good part of the blob, but not all of it.
    let tempName = "";
    await waitUntil("fill under way", async () => {
      for (const name of await readdir(join(dataDir, "tmp"))) {
        const st = await stat(join(dataDir, "tmp", name)).catch(() => undefined);
        if (name.startsWith("blob-") && st && st.size > 1024 * 1024) tempName = name;
      }
      return tempName !== "";
    });
    first.child.kill("SIGKILL");
    expect((await first.exited).signal).toBe("SIGKILL");
    const got = await body;
    expect(got.error).toBeDefined(); // the client's response was cut, never a clean end
    expect(got.bytes.length).toBeLessThan(big.blob.length);
    const leftovers = await readdir(join(dataDir, "tmp"));
    expect(leftovers).toContain(tempName); // the crash left it behind

    // Restart on the same data dir.
    up.on(BIG, { kind: "bytes", body: big.blob });
    const second = await spawnTug({ dataDir, config });
    children.push(second);
    await waitUntil("dead process's temp files removed", async () => !(await readdir(join(dataDir, "tmp"))).some((n) => leftovers.includes(n)), { logs: () => `left before restart: ${leftovers.join(", ")}; now: ${readdirSync(join(dataDir, "tmp")).join(", ")}\n${second.logs()}` });

    // Every committed file matches its digest; every tag record parses.
    const blobs = await filesUnder(join(dataDir, "blobs"));
    expect(blobs.map((p) => p.split("/").pop())).toEqual([small.blobDigest.slice(7)]);
    for (const p of blobs) expect(createHash("sha256").update(await readFile(p)).digest("hex")).toBe(p.split("/").pop());
    for (const p of await filesUnder(join(dataDir, "manifests"))) {
      const raw = await readFile(p);
      expect(createHash("sha256").update(raw.subarray(raw.indexOf(0x0a) + 1)).digest("hex")).toBe(p.split("/").pop());
    }
    for (const p of await filesUnder(join(dataDir, "repositories"))) expect(parseTagRecord(await readFile(p, "utf8"))).toBeDefined();

    // The interrupted blob is a miss, fetched whole and verified; the small one a hit with no upstream request.
    const before = up.count({ pathIncludes: SMALL });
    const again = await fetch(second.url + BIG);
    expect(again.headers.get("x-cache")).toBe("MISS");
    expect(sha256(Buffer.from(await again.arrayBuffer()))).toBe(big.blobDigest);
    const hit = await fetch(second.url + SMALL);
    expect(hit.headers.get("x-cache")).toBe("HIT");
    expect(sha256(Buffer.from(await hit.arrayBuffer()))).toBe(small.blobDigest);
    expect(up.count({ pathIncludes: SMALL })).toBe(before);
    second.child.kill("SIGTERM");
    expect((await second.exited).code).toBe(0);
  });
});
