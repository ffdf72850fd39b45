// Proves the integration harness itself against a plain docker-registry (no
// tug involved): seeded images are exact and valid, the real clients pull
// them (skopeo, podman, containerd via hosts.toml), and request counting is
// exact the moment a client is done.
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ctrPull,
  hostsToml,
  mirrorRegistriesConf,
  podmanPull,
  skopeoCopy,
  skopeoInspect,
  skopeoInspectRaw,
  startContainerd,
  type RunningContainerd,
} from "../helpers/clients.js";
import {
  BIG_LAYER_BYTES,
  MANIFEST_ACCEPT,
  chainId,
  pushImage,
  seedStandardImages,
  sha256,
  type StandardImages,
} from "../helpers/images.js";
import { startRegistry, type RunningRegistry } from "../helpers/registry.js";

describe("test harness against a plain docker-registry", () => {
  let registry: RunningRegistry;
  let images: StandardImages;
  let containerd: RunningContainerd;
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    let t = performance.now();
    registry = await startRegistry();
    timings["startRegistry"] = performance.now() - t;
    t = performance.now();
    images = await seedStandardImages(registry.url);
    timings["seedStandardImages"] = performance.now() - t;
    // The podman path-prefix mirror convention asks for /v2/docker.io/library/alpine/….
    await pushImage(registry.url, "docker.io/library/alpine", "3.20", images.alpine.built);
    t = performance.now();
    containerd = await startContainerd();
    timings["startContainerd"] = performance.now() - t;
    registry.resetRequests();
  }, 60_000);

  afterAll(async () => {
    await containerd?.stop();
    await registry?.stop();
    console.info("harness timings (ms):", Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])));
  });

  it("serves every seeded manifest byte for byte with its media type", async () => {
    for (const image of Object.values(images)) {
      const res = await fetch(`${registry.url}/v2/${image.repo}/manifests/${image.tag}`, {
        headers: { accept: MANIFEST_ACCEPT },
      });
      const body = Buffer.from(await res.arrayBuffer());
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(image.mediaType);
      expect(res.headers.get("docker-content-digest")).toBe(image.digest);
      expect(body.equals(image.built.manifest)).toBe(true);
    }
    expect(images.alpine.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(images.busybox.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(images.app.built.layers).toHaveLength(4);
    expect(images.alpine.amd64.layers).toHaveLength(3);
  });

  it("builds layers whose diff_ids are the sha256 of the gunzipped tar", () => {
    for (const layer of images.app.built.layers) {
      const tar = gunzipSync(layer.data);
      expect(sha256(tar)).toBe(layer.diffId);
      expect(tar.subarray(257, 262).toString()).toBe("ustar");
    }
    const big = images.big.built.layers[0];
    expect(big?.size).toBeGreaterThanOrEqual(BIG_LAYER_BYTES);
  });

  it("skopeo copies all platforms of the OCI index", async () => {
    const t = performance.now();
    const copy = await skopeoCopy(`docker://${registry.host}/library/alpine:3.20`, { all: true });
    timings["skopeoCopy --all"] = performance.now() - t;
    expect(copy.manifestDigest).toBe(images.alpine.digest);
    expect(copy.instanceDigests).toEqual([images.alpine.amd64.digest, images.alpine.arm64.digest].sort());
    const blobs = [images.alpine.amd64, images.alpine.arm64].flatMap((i) => [i.config, ...i.layers].map((b) => b.digest));
    expect(copy.blobDigests).toEqual(blobs.sort());
    await copy.cleanup();
  });

  it("skopeo copies only the arm64 image", async () => {
    const copy = await skopeoCopy(`docker://${registry.host}/library/alpine:3.20`, { arch: "arm64" });
    expect(copy.manifestDigest).toBe(images.alpine.arm64.digest);
    expect(copy.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    await copy.cleanup();
  });

  it("skopeo inspects the raw index and the platform image", async () => {
    const raw = await skopeoInspectRaw(`docker://${registry.host}/library/alpine:3.20`);
    expect(raw.digest).toBe(images.alpine.digest);
    const info = await skopeoInspect(`docker://${registry.host}/library/alpine:3.20`, { arch: "arm64" });
    // skopeo inspect reports the digest of the manifest the tag names (the index).
    expect(info.Digest).toBe(images.alpine.digest);
    expect(info.Architecture).toBe("arm64");
    expect(info.Layers).toEqual(images.alpine.arm64.layers.map((l) => l.digest));
  });

  it("counts upstream requests exactly once a client is done", async () => {
    const { app } = images;
    const layer = app.built.layers[2];
    if (layer === undefined) throw new Error("fixture: team/app has 4 layers");
    expect(registry.countRequests({ pathIncludes: "/team/app/" })).toBe(1); // the manifest GET of the first test
    registry.resetRequests();
    expect(registry.requests()).toEqual([]);
    const copy = await skopeoCopy(`docker://${registry.host}/team/app:v1`);
    expect(copy.manifestDigest).toBe(app.digest);
    expect(registry.countRequests({ method: "GET", pathIncludes: `/v2/team/app/blobs/${layer.digest}` })).toBe(1);
    expect(registry.countRequests({ method: "GET", pathMatches: /^\/v2\/team\/app\/blobs\/sha256:[a-f0-9]{64}$/ })).toBe(5);
    expect(registry.countRequests({ method: "GET", pathIncludes: "/v2/team/app/manifests/v1" })).toBe(1);
    const logged = registry.requests().find((r) => r.path === `/v2/team/app/blobs/${layer.digest}`);
    expect(logged?.status).toBe(200);
    await copy.cleanup();
  });

  it("skopeo copies the 64 MiB blob image", async () => {
    const t = performance.now();
    const copy = await skopeoCopy(`docker://${registry.host}/big/blob:latest`);
    timings["skopeoCopy big"] = performance.now() - t;
    expect(copy.manifestDigest).toBe(images.big.digest);
    expect(copy.blobDigests).toContain(images.big.built.layers[0]?.digest);
    await copy.cleanup();
  });

  it("podman pulls the Docker schema 2 image", async () => {
    const t = performance.now();
    const pulled = await podmanPull(`${registry.host}/library/busybox:1.36`);
    timings["podmanPull busybox"] = performance.now() - t;
    expect(pulled.digest).toBe(images.busybox.digest);
    expect(`sha256:${pulled.imageId}`).toBe(images.busybox.built.config.digest);
    await pulled.cleanup();
  });

  it("podman pulls the OCI index and picks amd64", async () => {
    const pulled = await podmanPull(`${registry.host}/library/alpine:3.20`);
    expect(pulled.digest).toBe(images.alpine.digest);
    expect(pulled.digests).toEqual(expect.arrayContaining([images.alpine.digest, images.alpine.amd64.digest]));
    expect(`sha256:${pulled.imageId}`).toBe(images.alpine.amd64.config.digest);
    await pulled.cleanup();
  });

  it("podman pulls docker.io/library/alpine:3.20 through a path-prefix mirror", async () => {
    const registriesConf = mirrorRegistriesConf(registry.host, "docker.io");
    const pulled = await podmanPull("docker.io/library/alpine:3.20", { registriesConf });
    expect(pulled.digest).toBe(images.alpine.digest);
    expect(registry.countRequests({ method: "GET", pathIncludes: "/v2/docker.io/library/alpine/manifests/3.20" })).toBe(1);
    await pulled.cleanup();
  });

  it("ctr pulls and unpacks through hosts.toml, sending ns=docker.io", async () => {
    const hostsDir = hostsToml(registry.url);
    const t = performance.now();
    const pulled = await ctrPull("docker.io/library/alpine:3.20", { hostsDir, containerd });
    timings["ctrPull alpine"] = performance.now() - t;
    expect(pulled.digest).toBe(images.alpine.digest);
    expect(pulled.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(pulled.unpacked).toBe(true);
    expect(pulled.snapshots).toContain(chainId(images.alpine.amd64.layers.map((l) => l.diffId)));
    const viaMirror = registry.requests().filter((r) => r.path.startsWith("/v2/library/alpine/") && r.query === "ns=docker.io");
    expect(viaMirror.length).toBeGreaterThanOrEqual(6); // index, amd64 manifest, config, 3 layers
    expect(viaMirror.some((r) => r.path === `/v2/library/alpine/manifests/${images.alpine.amd64.digest}`)).toBe(true);
  });

  it("ctr pulls with a private containerd started for the pull", async () => {
    const pulled = await ctrPull(`${registry.host}/library/busybox:1.36`, { plainHttp: true });
    expect(pulled.digest).toBe(images.busybox.digest);
    expect(pulled.unpacked).toBe(true);
  });
});
