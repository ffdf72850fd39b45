// Real clients (skopeo, podman, containerd's ctr) pulling through tug from a
// real docker-registry upstream: every digest checked, upstream requests
// counted, and the cache serving with the upstream gone.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ctrPull, hostsToml, mirrorRegistriesConf, podmanPull, skopeoCopy, startContainerd, type RunningContainerd } from "../helpers/clients.js";
import { seedStandardImages, type StandardImages } from "../helpers/images.js";
import { startRegistry, type RunningRegistry } from "../helpers/registry.js";
import { startTug, tempDir, type TestTug } from "../helpers/tug.js";
import { freePort } from "../helpers/ports.js";

describe("pulling through tug from a real docker-registry", () => {
  let registry: RunningRegistry;
  let images: StandardImages;
  let tug: TestTug;
  let dataDir: string;
  let containerd: RunningContainerd;

  beforeAll(async () => {
    registry = await startRegistry();
    images = await seedStandardImages(registry.directUrl);
    dataDir = await tempDir();
    tug = await startTug({ upstreams: { "docker.io": registry.url, "ghcr.io": registry.url }, dataDir });
    containerd = await startContainerd();
  }, 60_000);

  afterAll(async () => {
    await containerd?.stop();
    await tug?.stop();
    await registry?.stop();
  });

  it("skopeo copies all platforms of the OCI index; every digest matches", async () => {
    const copy = await skopeoCopy(`docker://${tug.host}/library/alpine:3.20`, { all: true });
    expect(copy.manifestDigest).toBe(images.alpine.digest);
    expect(copy.instanceDigests).toEqual([images.alpine.amd64.digest, images.alpine.arm64.digest].sort());
    const blobs = [images.alpine.amd64, images.alpine.arm64].flatMap((i) => [i.config, ...i.layers].map((b) => b.digest));
    expect(copy.blobDigests).toEqual(blobs.sort());
    await copy.cleanup();
  });

  it("skopeo copies a single platform (arm64)", async () => {
    const copy = await skopeoCopy(`docker://${tug.host}/alpine:3.20`, { arch: "arm64" });
    expect(copy.manifestDigest).toBe(images.alpine.arm64.digest);
    await copy.cleanup();
  });

  it("skopeo copies a Docker schema-2 image byte for byte", async () => {
    const copy = await skopeoCopy(`docker://${tug.host}/library/busybox:1.36`);
    expect(copy.manifestDigest).toBe(images.busybox.digest);
    expect(copy.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    await copy.cleanup();
  });

  it("a second pull makes zero upstream blob requests and zero manifest requests within tagTTL", async () => {
    const first = await skopeoCopy(`docker://${tug.host}/team/app:v1`);
    expect(first.manifestDigest).toBe(images.app.digest);
    await first.cleanup();
    expect(registry.countRequests({ method: "GET", pathIncludes: "/v2/team/app/blobs/" })).toBe(5); // config + 4 layers, once each
    registry.resetRequests();
    const second = await skopeoCopy(`docker://${tug.host}/team/app:v1`);
    expect(second.manifestDigest).toBe(images.app.digest);
    await second.cleanup();
    expect(registry.countRequests({ pathIncludes: "/blobs/" })).toBe(0);
    expect(registry.countRequests({ pathIncludes: "/manifests/" })).toBe(0);
  });

  it("20 concurrent GETs of one uncached 64 MiB blob make exactly one upstream GET; all 20 bodies hash right", async () => {
    const layer = images.big.built.layers[0]!;
    registry.resetRequests();
    const results = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const res = await fetch(`${tug.url}/v2/big/blob/blobs/${layer.digest}`);
        const hash = createHash("sha256");
        let n = 0;
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          hash.update(chunk);
          n += chunk.length;
        }
        return { status: res.status, n, digest: `sha256:${hash.digest("hex")}` };
      }),
    );
    for (const r of results) expect(r).toEqual({ status: 200, n: layer.size, digest: layer.digest });
    expect(registry.countRequests({ method: "GET", pathIncludes: `/blobs/${layer.digest}` })).toBe(1);
    // and skopeo pulls the whole image, verifying it, with no further blob GET for that layer
    const copy = await skopeoCopy(`docker://${tug.host}/big/blob:latest`);
    expect(copy.manifestDigest).toBe(images.big.digest);
    await copy.cleanup();
    expect(registry.countRequests({ method: "GET", pathIncludes: `/blobs/${layer.digest}` })).toBe(1);
  });

  it("podman pulls through a path-prefix mirror (registries.conf location = tug/docker.io)", async () => {
    registry.resetRequests();
    const pulled = await podmanPull("docker.io/library/busybox:1.36", { registriesConf: mirrorRegistriesConf(tug.host, "docker.io") });
    expect(pulled.digest).toBe(images.busybox.digest);
    expect(`sha256:${pulled.imageId}`).toBe(images.busybox.built.config.digest);
    await pulled.cleanup();
  });

  it("podman pulls the OCI index from tug directly", async () => {
    const pulled = await podmanPull(`${tug.host}/library/alpine:3.20`);
    expect(pulled.digest).toBe(images.alpine.digest);
    expect(`sha256:${pulled.imageId}`).toBe(images.alpine.amd64.config.digest);
    await pulled.cleanup();
  });

  it("containerd (ctr --hosts-dir, ?ns=docker.io) pulls and unpacks through tug", async () => {
    const pulled = await ctrPull("docker.io/library/alpine:3.20", { hostsDir: hostsToml(tug.url), containerd });
    expect(pulled.digest).toBe(images.alpine.digest);
    expect(pulled.unpacked).toBe(true);
  });

  it("ns=ghcr.io routes to that upstream and keeps its tag records apart", async () => {
    registry.resetRequests();
    const res = await fetch(`${tug.url}/v2/team/app/manifests/v1?ns=ghcr.io`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-cache")).toBe("MISS"); // docker.io's record for team/app:v1 is not ghcr.io's
    await res.arrayBuffer();
    expect(registry.countRequests({ pathIncludes: "/v2/team/app/manifests/v1" })).toBe(1);
  });

  it("with the upstream stopped, cached tags and digests still pull", async () => {
    await registry.stop();
    const byTag = await skopeoCopy(`docker://${tug.host}/library/alpine:3.20`, { all: true });
    expect(byTag.manifestDigest).toBe(images.alpine.digest);
    await byTag.cleanup();
    const byDigest = await skopeoCopy(`docker://${tug.host}/team/app@${images.app.digest}`);
    expect(byDigest.manifestDigest).toBe(images.app.digest);
    await byDigest.cleanup();
    // and after tagTTL the stale tag is still served
    tug.advance(10 * 60_000);
    const stale = await fetch(`${tug.url}/v2/library/busybox/manifests/1.36`);
    expect(stale.status).toBe(200);
    expect(stale.headers.get("x-cache")).toBe("STALE");
    await stale.arrayBuffer();
  });

  it("a new tug starts with no upstream reachable and serves the cache", async () => {
    const deadPort = await freePort();
    const offline = await startTug({ upstreams: { "docker.io": `http://127.0.0.1:${deadPort}` }, dataDir });
    try {
      const copy = await skopeoCopy(`docker://${offline.host}/library/busybox:1.36`);
      expect(copy.manifestDigest).toBe(images.busybox.digest);
      await copy.cleanup();
      const unknown = await fetch(`${offline.url}/v2/library/nothing/manifests/1`);
      expect(unknown.status).toBe(503);
      await unknown.arrayBuffer();
    } finally {
      await offline.stop();
    }
  });
});
