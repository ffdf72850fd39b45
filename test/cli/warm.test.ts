// `tug warm` against a running tug in front of a real docker-registry: what it
// fetches, what it reports, and that a later pull is served with zero upstream
// blob requests.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { skopeoCopy } from "../helpers/clients.js";
import { tug, tugProcess } from "../helpers/cli.js";
import { seedStandardImages, type StandardImages } from "../helpers/images.js";
import { startRegistry, type RunningRegistry } from "../helpers/registry.js";
import { startTug, type TestTug } from "../helpers/tug.js";
import { freePort } from "../helpers/ports.js";

let registry: RunningRegistry;
let images: StandardImages;
let server: TestTug;

beforeAll(async () => {
  registry = await startRegistry();
  images = await seedStandardImages(registry.directUrl);
  server = await startTug({ upstreams: { "docker.io": registry.url, "ghcr.io": registry.url } });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await registry?.stop();
});

const blobGets = (digests: string[]): number =>
  registry.requests().filter((r) => r.method === "GET" && digests.some((d) => r.path.endsWith(`/blobs/${d}`))).length;

describe("tug warm", () => {
  it("warms every platform of an index and a plain image; a later skopeo pull makes zero upstream blob (and manifest) requests", async () => {
    registry.resetRequests();
    const r = await tug(["warm", "--server", server.url, "library/alpine:3.20", "team/app:v1"]);
    expect(r.stderr).toContain("library/alpine:3.20: warmed (6 layers");
    expect(r.code).toBe(0);
    // alpine: 2 platforms × (config + 3 layers); app: config + 4 layers. All fetched, none cached before.
    expect(r.stdout).toMatch(/library\/alpine:3\.20\s+linux\/amd64,linux\/arm64\/v8\s+6\s+8 blobs, [\d.]+ KiB\s+0 blobs, 0 B/);
    expect(r.stdout).toMatch(/team\/app:v1\s+-\s+4\s+5 blobs, [\d.]+ KiB\s+0 blobs, 0 B/);
    expect(r.stdout).toContain("total: fetched 13 blobs");
    const alpineBlobs = images.alpine.images.flatMap((i) => [i.config, ...i.layers].map((b) => b.digest));
    const appBlobs = [images.app.built.config, ...images.app.built.layers].map((b) => b.digest);
    expect(blobGets([...alpineBlobs, ...appBlobs])).toBe(13); // each blob fetched upstream exactly once

    registry.resetRequests();
    const all = await skopeoCopy(`docker://${server.host}/library/alpine:3.20`, { all: true });
    expect(all.manifestDigest).toBe(images.alpine.digest);
    await all.cleanup();
    const app = await skopeoCopy(`docker://${server.host}/team/app:v1`);
    expect(app.manifestDigest).toBe(images.app.digest);
    await app.cleanup();
    expect(registry.countRequests({ pathIncludes: "/blobs/" })).toBe(0);
    expect(registry.countRequests({ pathIncludes: "/manifests/" })).toBe(0);
  });

  it("a second warm finds everything cached: it downloads no blob, from the upstream or from tug", async () => {
    registry.resetRequests();
    const r = await tug(["warm", "--server", server.url, "library/alpine:3.20", "team/app:v1"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/library\/alpine:3\.20\s+\S+\s+6\s+0 blobs, 0 B\s+8 blobs, [\d.]+ KiB/);
    expect(r.stdout).toContain("total: fetched 0 blobs (0 B), already cached 13 blobs");
    expect(registry.countRequests({ pathIncludes: "/blobs/" })).toBe(0);
  });

  it("--platform linux/arm64 warms only that platform", async () => {
    const other = await startTug({ upstreams: { "docker.io": registry.url } });
    try {
      registry.resetRequests();
      const r = await tug(["warm", "-s", other.url, "--platform", "linux/arm64", "alpine:3.20"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/alpine:3\.20\s+linux\/arm64\/v8\s+3\s+4 blobs/);
      const arm = [images.alpine.arm64.config, ...images.alpine.arm64.layers].map((b) => b.digest);
      const amd = [images.alpine.amd64.config, ...images.alpine.amd64.layers].map((b) => b.digest);
      expect(blobGets(arm)).toBe(4);
      expect(blobGets(amd)).toBe(0);
      expect(registry.countRequests({ pathIncludes: `/manifests/${images.alpine.amd64.digest}` })).toBe(0);
    } finally {
      await other.stop();
    }
  });

  it("names an upstream with a registry prefix (sent as ?ns=), and a digest reference", async () => {
    registry.resetRequests();
    const r = await tug(["warm", "--server", server.url, `ghcr.io/library/busybox@${images.busybox.digest}`]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/busybox@sha256:\S+\s+-\s+2\s+3 blobs/);
  });

  it("a platform the index lacks, and an image the upstream lacks, fail with a reason and exit 1; the others still warm", async () => {
    const r = await tug(["warm", "--no-progress", "--server", server.url, "--platform", "linux/s390x", "alpine:3.20"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("alpine:3.20: failed: no linux/s390x image in alpine:3.20 (it has linux/amd64, linux/arm64/v8)");
    const two = await tug(["warm", "--server", server.url, "library/nothing:here", "team/app:v1"]);
    expect(two.code).toBe(1);
    expect(two.stdout).toContain("  library/nothing:here: failed: tug answered 404 MANIFEST_UNKNOWN: manifest unknown to upstream docker.io\n");
    expect(two.stdout).toContain("warmed 1 of 2 images");
  });

  it("--user logs in to a tug whose clients must (auth.users)", async () => {
    const { hashSync } = await import("bcryptjs");
    const locked = await startTug({ upstreams: { "docker.io": registry.url }, extra: { auth: { users: { ci: hashSync("s3cret", 4) } } } });
    try {
      const denied = await tug(["warm", "--no-progress", "-s", locked.url, "team/app:v1"]);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/^team\/app:v1: failed: tug answered 401 UNAUTHORIZED/);
      const ok = await tug(["warm", "-s", locked.url, "--user", "ci:s3cret", "team/app:v1"]);
      expect(ok.stderr).toMatch(/^team\/app:v1: warmed \(4 layers, [\d.]+ KiB\)\n$/);
      expect(ok.code).toBe(0);
    } finally {
      await locked.stop();
    }
  });

  it("an unreachable server is a one-line failure, exit 1", async () => {
    const port = await freePort();
    const r = await tug(["warm", "--no-progress", "--server", `http://127.0.0.1:${port}`, "alpine"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`alpine: failed: cannot reach tug at http://127.0.0.1:${port}: ECONNREFUSED\n`);
  });

  it("on a terminal, draws a bar per image with bytes and layers, redrawn in place", async () => {
    const r = await tug(["warm", "--server", server.url, "library/alpine:3.20", "library/busybox:1.36"], { tty: true, columns: 120 });
    expect(r.code).toBe(0);
    const lines = r.stderr.split("\n");
    expect(r.stderr).toContain("\x1b[2A"); // moved up over the two bars to redraw them
    const last = lines.filter((l) => l.includes("library/busybox:1.36")).at(-1) ?? "";
    expect(last).toMatch(/library\/busybox:1\.36\s+█{10,} 100%\s+[\d.]+ KiB\/[\d.]+ KiB\s+2\/2 layers\s+done/);
  });

  it("the real bin: warms, prints the summary and exits 0", async () => {
    const r = await tugProcess(["warm", "--server", server.url, "team/app:v1"]);
    expect(r.stderr).toMatch(/^team\/app:v1: warmed \(4 layers, [\d.]+ KiB\)\n$/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("warmed 1 of 1 image through");
  });
});

describe("tug warm: bad arguments", () => {
  it.each([
    [["warm"], "tug: warm: name at least one image"],
    [["warm", "--server"], "tug: warm: --server needs a value"],
    [["warm", "--platform", "linux", "alpine"], 'tug: warm: --platform: "linux" is not a platform'],
    [["warm", "--server", "ftp://x", "alpine"], 'tug: warm: --server: "ftp://x" must be an http(s) origin'],
    [["warm", "Alpine:3"], 'tug: warm: "Alpine:3" is not an image reference'],
    [["warm", "alpine@sha256:abc"], 'tug: warm: "alpine@sha256:abc" is not an image reference'],
    [["warm", "--concurrency", "0", "alpine"], 'tug: warm: --concurrency: "0" is not a number from 1 to 64'],
    [["warm", "--jobs", "3", "alpine"], "tug: warm: unknown option --jobs"],
    [["warm", "--user", "ci", "alpine"], "tug: warm: --user: give USER:PASSWORD"],
  ])("%j → exit 2 with one line", async (argv, message) => {
    const r = await tug(argv);
    expect(r.code).toBe(2);
    expect(r.stderr.startsWith(message)).toBe(true);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stdout).toBe("");
  });
});
