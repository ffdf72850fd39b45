// `tug ls` on a data dir a real tug filled, `tug prune` and `tug serve`
// argument handling, and the bin's exit codes for bad command lines.
import { mkdir, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tug, tugProcess } from "../helpers/cli.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture } from "../helpers/fixtures.js";
import { startTug, tempDir, type TestTug } from "../helpers/tug.js";
import type { Pruner, PruneRequest } from "../../src/cli/prune-command.js";

const fx = makeFixture(10 * 1024);
let upstream: FaultServer;
let server: TestTug;
let dataDir: string;

beforeAll(async () => {
  upstream = await startFaultServer();
  for (const repo of ["library/alpine", "team/app"]) {
    upstream.on(`/v2/${repo}/manifests/1.0`, { kind: "bytes", body: fx.manifest, headers: { "content-type": fx.mediaType } });
    upstream.on(`/v2/${repo}/blobs/${fx.blobDigest}`, { kind: "bytes", body: fx.blob });
  }
  dataDir = await tempDir();
  server = await startTug({ upstreams: { "localhost:5001": upstream.url }, dataDir });
  for (const repo of ["library/alpine", "team/app"]) {
    expect((await fetch(`${server.url}/v2/${repo}/manifests/1.0`)).status).toBe(200);
  }
  await (await fetch(`${server.url}/v2/team/app/blobs/${fx.blobDigest}`)).arrayBuffer();
});

afterAll(async () => {
  await server?.stop();
  await upstream?.close();
});

describe("tug ls", () => {
  it("lists each cached tag with its digest, cached blobs and size on disk, and the totals", async () => {
    const r = await tug(["ls", "--data-dir", dataDir], { now: () => Date.now() + 90_000 });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^REPOSITORY\s+TAG\s+DIGEST\s+PLATFORMS\s+BLOBS\s+SIZE\s+CHECKED$/);
    // The config blob was never requested, so one of the two blobs is cached.
    const size = `${((fx.manifest.length + fx.blob.length) / 1024).toFixed(1)} KiB`;
    expect(lines[1]).toMatch(new RegExp(`^localhost_5001/library/alpine\\s+1\\.0\\s+${fx.manifestDigest.slice(0, 19)}\\s+-\\s+1/2\\s+${size}\\s+1m ago$`));
    expect(lines[2]).toMatch(/^localhost_5001\/team\/app\s+1\.0\s+/);
    expect(lines[3]).toBe(`2 repositories, 2 tags; on disk: 1 blobs (${(fx.blob.length / 1024).toFixed(1)} KiB), 1 manifests (${fx.manifest.length + fx.mediaType.length + 1} B)`);
  });

  it("names upstreams by host when it reads the config, filters, and prints JSON", async () => {
    const config = join(dataDir, "..", `tug-ls-${process.pid}.yaml`);
    await writeFile(config, `dataDir: ${JSON.stringify(dataDir)}\nupstreams:\n  localhost:5001: { url: "${upstream.url}" }\n`);
    const r = await tug(["ls", "--config", config, "--json", "team"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { tags: { repository: string; tag: string; digest: string; blobsCached: number; bytes: number }[] };
    expect(out.tags).toEqual([
      expect.objectContaining({ repository: "localhost:5001/team/app", tag: "1.0", digest: fx.manifestDigest, blobsCached: 1, bytes: fx.manifest.length + fx.blob.length }),
    ]);
    const viaEnv = await tug(["ls", "nothing-like-this"], { env: { TUG_CONFIG: config } });
    expect(viaEnv.stdout).toContain(`nothing cached matches nothing-like-this in ${dataDir}`);
  });

  it("an empty data dir says so; a missing one is an error", async () => {
    const empty = await tempDir();
    expect((await tug(["ls", "-d", empty])).stdout).toBe(`nothing cached yet in ${empty}\n0 repositories, 0 tags; on disk: 0 blobs (0 B), 0 manifests (0 B)\n`);
    const missing = await tug(["ls", "--data-dir", join(empty, "nope")]);
    expect(missing).toEqual({ code: 1, stdout: "", stderr: `tug: ls: no data directory at ${join(empty, "nope")}\n` });
  });

  it.each([
    [["ls", "--data-dir"], "tug: ls: --data-dir needs a value"],
    [["ls", "--json=yes"], "tug: ls: --json takes no value"],
    [["ls", "--size"], "tug: ls: unknown option --size"],
    [["ls", "--data-dir", "/x", "--config", "/y"], "tug: --data-dir and --config cannot be used together"],
    [["ls", "--config", "/nonexistent/tug.yaml"], "tug: config: cannot read config file /nonexistent/tug.yaml: no such file"],
  ])("%j → exit 2 with one line", async (argv, message) => {
    const r = await tug(argv);
    expect(r).toEqual({ code: 2, stdout: "", stderr: `${message}\n` });
  });
});

describe("tug prune", () => {
  it("evicts with the cache's Evictor: --older-than by last access, --dry-run removes nothing, --max-size down to the size", async () => {
    const dir = await tempDir();
    const own = await startTug({ upstreams: { "docker.io": upstream.url }, dataDir: dir });
    await (await fetch(`${own.url}/v2/team/app/manifests/1.0`)).arrayBuffer();
    await (await fetch(`${own.url}/v2/team/app/blobs/${fx.blobDigest}`)).arrayBuffer();
    await own.stop();
    const blobFile = join(dir, "blobs", "sha256", fx.blobDigest.slice(7, 9), fx.blobDigest.slice(7));
    const manifestFile = join(dir, "manifests", "sha256", fx.manifestDigest.slice(7, 9), fx.manifestDigest.slice(7));
    // Last used two hours ago: the blob only.
    const old = new Date(Date.now() - 2 * 3_600_000);
    await utimes(blobFile, old, old);

    const aged = await tug(["prune", "--data-dir", dir, "--older-than", "1h"]);
    expect(aged.stderr).toBe("");
    expect(aged.code).toBe(0);
    expect(aged.stdout).toMatch(/^removed 1 blobs and 0 manifests \(10\.0 KiB\) unused for 1h; [\d.]+ B remain in /);
    await expect(stat(blobFile)).rejects.toThrow(/ENOENT/);
    expect((await stat(manifestFile)).isFile()).toBe(true);

    const dry = await tug(["prune", "-d", dir, "--max-size", "0", "--dry-run"]);
    expect(dry.stdout).toMatch(/^would remove 0 blobs and 1 manifests/);
    expect((await stat(manifestFile)).isFile()).toBe(true);

    const all = await tug(["prune", "-d", dir, "--max-size", "0"]);
    expect(all.stdout).toMatch(/^removed 0 blobs and 1 manifests .* down to 0 B; 0 B remain/);
    await expect(stat(manifestFile)).rejects.toThrow(/ENOENT/);
  });

  it("passes --max-size and --older-than, parsed, to the evictor, and reports what it removed", async () => {
    const calls: { dataDir: string; req: PruneRequest }[] = [];
    const pruner: Pruner = async (dir, req) => {
      calls.push({ dataDir: dir, req });
      return { removedBlobs: 3, removedManifests: 1, removedBytes: 3 * 1024 * 1024, remainingBytes: 1024 };
    };
    const r = await tug(["prune", "--data-dir", dataDir, "--max-size", "20GiB", "--older-than", "30d"], { pruner });
    expect(r.code).toBe(0);
    expect(calls).toEqual([{ dataDir, req: { maxSize: 20 * 2 ** 30, olderThan: 30 * 86_400_000, dryRun: false } }]);
    expect(r.stdout).toBe(`removed 3 blobs and 1 manifests (3.0 MiB) down to 20.0 GiB, unused for 30d; 1.0 KiB remain in ${dataDir}\n`);
    const dry = await tug(["prune", "-d", dataDir, "--older-than", "12h", "--dry-run"], { pruner });
    expect(calls[1]?.req).toEqual({ maxSize: undefined, olderThan: 12 * 3_600_000, dryRun: true });
    expect(dry.stdout).toMatch(/^would remove 3 blobs/);
  });

  it.each([
    [["prune"], "tug: prune: say what to evict with --max-size SIZE (e.g. 20GiB) and/or --older-than DURATION (e.g. 30d)"],
    [["prune", "--max-size", "12XB"], 'tug: prune: --max-size: "12XB" is not a size'],
    [["prune", "--max-size"], "tug: prune: --max-size needs a value"],
    [["prune", "--older-than", "soon"], 'tug: prune: --older-than: "soon" is not a duration'],
    [["prune", "--older-than", "0"], "tug: prune: --older-than: must be greater than 0"],
    [["prune", "--max-size", "1GiB", "extra"], "tug: prune: unexpected argument extra"],
  ])("%j → exit 2 with one line", async (argv, message) => {
    const called: unknown[] = [];
    const r = await tug(argv, { pruner: async (...a) => (called.push(a), { removedBlobs: 0, removedManifests: 0, removedBytes: 0, remainingBytes: 0 }) });
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith(message)).toBe(true);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(called).toEqual([]);
  });
});

describe("tug serve and the command line", () => {
  it.each([
    [["serve", "--log-format", "loud"], 'tug: serve: --log-format: "loud" is not one of auto, json, pretty'],
    [["serve", "--pretty", "--log-format", "json"], "tug: serve: --pretty and --log-format cannot be used together"],
    [["serve", "--port", "5000"], "tug: serve: unknown option --port"],
    [["serve", "extra"], "tug: serve: unexpected argument extra"],
    [["serve", "--config", "/nonexistent.yaml"], "tug: config: cannot read config file /nonexistent.yaml: no such file"],
    [["bogus"], 'tug: unknown command "bogus" (commands: serve, warm, ls, prune; see tug --help)'],
  ])("%j → exit 2 with one line", async (argv, message) => {
    const r = await tug(argv);
    expect(r).toEqual({ code: 2, stdout: "", stderr: `${message}\n` });
  });

  it("a bad config value names its key", async () => {
    const dir = await tempDir();
    await mkdir(dir, { recursive: true });
    const file = join(dir, "bad.yaml");
    await writeFile(file, "cache:\n  tagTTL: soon\nupstreams:\n  docker.io: { url: https://registry-1.docker.io }\n");
    const r = await tug(["serve", "--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tug: config: cache\.tagTTL: "soon" is not a duration/);
  });

  it("--help prints every command; no command prints it to stderr with exit 2", async () => {
    const help = await tug(["--help"]);
    expect(help.code).toBe(0);
    for (const c of ["tug serve", "tug warm", "tug ls", "tug prune"]) expect(help.stdout).toContain(c);
    expect((await tug(["warm", "--help"])).stdout).toMatch(/^usage: tug warm /);
    const none = await tug([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("tug serve");
  });

  it("the real bin exits 2 with one line on a bad command line", async () => {
    const r = await tugProcess(["prune", "--max-size", "lots"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tug: prune: --max-size: "lots" is not a size[^\n]*\n$/);
  });
});
