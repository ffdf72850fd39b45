// The disk budget with real clients: skopeo pulls more images than fit in a
// small cache.maxSize through tug from a real docker-registry. The cache stays
// under the budget, the least recently used image goes first, every pull stays
// correct (skopeo verifies every digest), and an image whose layers were
// evicted pulls again, its layers refetched transparently.
import { stat } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Layout } from "../../src/cache/layout.js";
import { parseDigest } from "../../src/oci/digest.js";
import { skopeoCopy } from "../helpers/clients.js";
import { buildImage, pushImage, type BuiltImage } from "../helpers/images.js";
import { parseExposition } from "../helpers/metrics.js";
import { startRegistry, type RunningRegistry } from "../helpers/registry.js";
import { startTug, type TestTug } from "../helpers/tug.js";

const MiB = 1 << 20;
const MAX = 8 * MiB; // high watermark 90 % = 7.2 MiB, low 80 % = 6.4 MiB

describe("disk budget with real pulls", () => {
  let registry: RunningRegistry;
  let tug: TestTug;
  const images: Record<"a" | "b" | "c", BuiltImage> = {
    a: buildImage({ format: "oci", layers: [{ randomBytes: 3 * MiB, seed: 501 }] }),
    b: buildImage({ format: "oci", layers: [{ randomBytes: 3 * MiB, seed: 502 }] }),
    c: buildImage({ format: "oci", layers: [{ randomBytes: 3 * MiB, seed: 503 }] }),
  };

  beforeAll(async () => {
    registry = await startRegistry();
    for (const [name, image] of Object.entries(images)) await pushImage(registry.directUrl, `budget/${name}`, "v1", image);
    tug = await startTug({ upstreams: { "docker.io": registry.url }, cache: { maxSize: "8MiB" } });
  }, 60_000);

  afterAll(async () => {
    await tug?.stop();
    await registry?.stop();
  });

  async function pull(name: "a" | "b" | "c"): Promise<void> {
    const copy = await skopeoCopy(`docker://${tug.host}/budget/${name}:v1`);
    expect(copy.manifestDigest).toBe(images[name].digest);
    expect(copy.blobDigests).toEqual([images[name].config.digest, ...images[name].layers.map((l) => l.digest)].sort());
    await copy.cleanup();
    await tug.runtime.evictor.settled();
  }

  async function usage(): Promise<number> {
    const samples = parseExposition(await (await fetch(`${tug.url}/metrics`)).text());
    return samples.get("tug_disk_usage_bytes") ?? NaN;
  }

  const layout = (): Layout => new Layout(tug.dataDir);
  const onDisk = (digest: string): Promise<boolean> =>
    stat(layout().blob(parseDigest(digest))).then(
      () => true,
      () => false,
    );
  const layerGets = (name: string): number =>
    registry.countRequests({ method: "GET", pathIncludes: `/v2/budget/${name}/blobs/${images[name as "a"].layers[0]!.digest}` });

  it("stays under maxSize, evicts the least recently used image first, and re-pulls an evicted image correctly", async () => {
    await pull("a");
    await pull("b");
    expect(await usage()).toBeGreaterThan(6 * MiB);
    tug.advance(1000);
    await pull("a"); // a is used again: b is now the least recently used
    expect(layerGets("a")).toBe(1);
    tug.advance(1000);
    await pull("c"); // 9+ MiB would not fit: b's blobs go
    const after = await usage();
    expect(after).toBeLessThanOrEqual(MAX);
    expect(await onDisk(images.b.layers[0]!.digest)).toBe(false);
    expect(await onDisk(images.a.layers[0]!.digest)).toBe(true);
    expect(await onDisk(images.c.layers[0]!.digest)).toBe(true);
    const samples = parseExposition(await (await fetch(`${tug.url}/metrics`)).text());
    expect(samples.get('tug_evictions_total{kind="blob"}')).toBeGreaterThanOrEqual(1);
    expect(samples.get("tug_evicted_bytes_total")).toBeGreaterThanOrEqual(3 * MiB);

    // b's manifest is still cached but its layer is not: the pull refetches the layer by digest.
    expect(layerGets("b")).toBe(1);
    tug.advance(1000);
    await pull("b");
    expect(layerGets("b")).toBe(2);
    expect(registry.countRequests({ method: "GET", pathIncludes: "/v2/budget/b/manifests/" })).toBe(1);
    expect(await usage()).toBeLessThanOrEqual(MAX);
    // Now a is the least recently used: it went to make room for b.
    expect(await onDisk(images.a.layers[0]!.digest)).toBe(false);
    expect(await onDisk(images.c.layers[0]!.digest)).toBe(true);
    expect(await onDisk(images.b.layers[0]!.digest)).toBe(true);
  });
});
