// The private marks: on disk before a private fetch, read back after a
// restart and by other replicas; confirmations and private repositories expire.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { PrivateIndex } from "../../src/auth/private-index.js";
import { Layout } from "../../src/cache/layout.js";
import { parseConfig } from "../../src/config/index.js";
import { parseDigest } from "../../src/oci/digest.js";
import { tempDir } from "../helpers/tug.js";

const config = parseConfig({ dataDir: "/tmp/x", upstreams: { "docker.io": { url: "https://registry-1.docker.io", clientAuth: true }, "ghcr.io": { url: "https://ghcr.io" } } }, {});
const hub = config.upstreams["docker.io"]!;
const ghcr = config.upstreams["ghcr.io"]!;
const d = parseDigest(`sha256:${"ab".repeat(32)}`);

async function layoutIn(): Promise<Layout> {
  const layout = new Layout(await tempDir());
  await mkdir(layout.tmpDir, { recursive: true });
  return layout;
}

describe("PrivateIndex", () => {
  it("marks survive a restart: a new index loads them from disk", async () => {
    const layout = await layoutIn();
    const a = new PrivateIndex({ layout, now: Date.now });
    expect(await a.routesOf(d)).toBeUndefined();
    await a.addRoute(d, { upstream: hub, repository: "private/app" });
    await a.addRoute(d, { upstream: ghcr, repository: "team/secret" });
    const b = new PrivateIndex({ layout, now: Date.now });
    expect(await b.routesOf(d)).toBeUndefined(); // not loaded yet
    expect(await b.load()).toBe(1);
    expect([...((await b.routesOf(d)) ?? [])].sort()).toEqual(["docker.io\nprivate/app", "ghcr.io\nteam/secret"]);
    await b.clear(d);
    const c = new PrivateIndex({ layout, now: Date.now });
    expect(await c.load()).toBe(0);
  });

  it("shared (replicas on one dataDir): a mark another process wrote is seen on the next lookup", async () => {
    const layout = await layoutIn();
    const mine = new PrivateIndex({ layout, now: Date.now, shared: true });
    const theirs = new PrivateIndex({ layout, now: Date.now, shared: true });
    expect(await mine.routesOf(d)).toBeUndefined();
    await theirs.addRoute(d, { upstream: hub, repository: "private/app" });
    expect(await mine.routesOf(d)).toEqual(new Set(["docker.io\nprivate/app"]));
  });

  it("a damaged mark still says private (fail closed), with no route allowed", async () => {
    const layout = await layoutIn();
    await mkdir(dirname(layout.privateMark(d)), { recursive: true });
    await writeFile(layout.privateMark(d), "{not json");
    const index = new PrivateIndex({ layout, now: Date.now });
    await index.load();
    expect(await index.routesOf(d)).toEqual(new Set());
  });

  it("confirmations last at most 60 s per (route, token); private repositories a few minutes", async () => {
    let now = 1_000_000;
    const index = new PrivateIndex({ layout: await layoutIn(), now: () => now, confirmTTL: 10 * 60_000 });
    const route = { upstream: hub, repository: "private/app" };
    index.confirm(route, "t1");
    expect(index.isConfirmed(route, "t1")).toBe(true);
    expect(index.isConfirmed(route, "t2")).toBe(false);
    expect(index.isConfirmed({ upstream: hub, repository: "private/other" }, "t1")).toBe(false);
    expect(index.isConfirmed({ upstream: ghcr, repository: "private/app" }, "t1")).toBe(false);
    now += 59_999;
    expect(index.isConfirmed(route, "t1")).toBe(true);
    now += 1;
    expect(index.isConfirmed(route, "t1")).toBe(false); // capped at 60 s whatever confirmTTL says
    index.notePrivateRepo(route);
    now += 4 * 60_000;
    expect(index.isPrivateRepo(route)).toBe(true);
    now += 60_000;
    expect(index.isPrivateRepo(route)).toBe(false);
  });
});
