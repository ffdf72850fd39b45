// Two real docker-registry upstreams behind one tug ("docker.io" the default,
// "ghcr.io" the second): every client convention routes to the right one
// (Docker's default, podman's path prefix, containerd's ?ns=), the same
// repository name under each never shares cache entries, names and hosts are
// lookup keys only (nothing unlisted is ever dialed), and tags/list and
// referrers are answered as the protocol says even by an upstream that
// ignores `n` (distribution 2.8).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ctrPull, hostsToml, mirrorRegistriesConf, podmanPull, skopeoCopy, skopeoListTags, startContainerd, type RunningContainerd } from "../helpers/clients.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { buildImage, pushImage, pushManifest } from "../helpers/images.js";
import { startRegistry, type RunningRegistry } from "../helpers/registry.js";
import { startTug, type TestTug } from "../helpers/tug.js";

const hubApp = buildImage({ format: "oci", cmd: ["/hub"], layers: [{ files: { "etc/which": "docker.io\n".repeat(30) } }] });
const ghcrApp = buildImage({ format: "oci", cmd: ["/ghcr"], layers: [{ files: { "etc/which": "ghcr.io\n".repeat(30) } }] });
const redirected = buildImage({ format: "oci", layers: [1, 2, 3].map((i) => ({ files: { [`r${i}`]: `redirected ${i}\n` } })) });
const tagged = buildImage({ format: "docker", layers: [{ files: { "tags.txt": "many tags\n" } }] });
// Pushed in an order that is not the sorted one.
const TAGS = Array.from({ length: 25 }, (_, i) => `v${(i * 7) % 25}`);
const SORTED = [...TAGS].sort();

let hub: RunningRegistry;
let ghcr: RunningRegistry;
let unlisted: FaultServer;
let tug: TestTug;
let containerd: RunningContainerd;

beforeAll(async () => {
  [hub, ghcr, unlisted] = await Promise.all([startRegistry(), startRegistry(), startFaultServer()]);
  await Promise.all([pushImage(hub.directUrl, "team/app", "v1", hubApp), pushImage(ghcr.directUrl, "team/app", "v1", ghcrApp)]);
  await pushImage(hub.directUrl, "redirect/me", "v1", redirected);
  await pushImage(hub.directUrl, "many/tags", TAGS[0]!, tagged);
  for (const t of TAGS.slice(1)) await pushManifest(hub.directUrl, "many/tags", t, tagged);
  tug = await startTug({ upstreams: { "docker.io": hub.url, "ghcr.io": ghcr.url } });
  containerd = await startContainerd();
}, 60_000);

afterAll(async () => {
  await containerd?.stop();
  await tug?.stop();
  await Promise.all([hub?.stop(), ghcr?.stop(), unlisted?.close()]);
});

describe("routing with real clients and two upstreams", () => {
  it("the same repository under two upstreams: default (skopeo) and path prefix (skopeo, podman) each get their own, from their own upstream", async () => {
    const viaDefault = await skopeoCopy(`docker://${tug.host}/team/app:v1`);
    expect(viaDefault.manifestDigest).toBe(hubApp.digest);
    await viaDefault.cleanup();
    const viaPrefix = await skopeoCopy(`docker://${tug.host}/ghcr.io/team/app:v1`);
    expect(viaPrefix.manifestDigest).toBe(ghcrApp.digest);
    await viaPrefix.cleanup();
    const viaPodman = await podmanPull("ghcr.io/team/app:v1", { registriesConf: mirrorRegistriesConf(tug.host, "ghcr.io") });
    expect(viaPodman.digest).toBe(ghcrApp.digest);
    await viaPodman.cleanup();
    // Each upstream answered its own tag once (the second ghcr.io pull was a cache hit), and only its own blobs.
    expect(hub.countRequests({ method: "GET", pathIncludes: "/v2/team/app/manifests/v1" })).toBe(1);
    expect(ghcr.countRequests({ method: "GET", pathIncludes: "/v2/team/app/manifests/v1" })).toBe(1);
    expect(hub.countRequests({ pathIncludes: ghcrApp.layers[0]!.digest })).toBe(0);
    expect(ghcr.countRequests({ pathIncludes: hubApp.layers[0]!.digest })).toBe(0);
    expect(ghcr.countRequests({ method: "GET", pathIncludes: `/blobs/${ghcrApp.layers[0]!.digest}` })).toBe(1);
  });

  it("containerd's ?ns= picks the upstream: ns=ghcr.io and ns=docker.io get different images for one name", async () => {
    const dir = hostsToml(tug.url, { upstream: "ghcr.io" });
    hostsToml(tug.url, { upstream: "docker.io", dir });
    hub.resetRequests();
    ghcr.resetRequests();
    const fromGhcr = await ctrPull("ghcr.io/team/app:v1", { hostsDir: dir, containerd });
    expect(fromGhcr.digest).toBe(ghcrApp.digest);
    const fromHub = await ctrPull("docker.io/team/app:v1", { hostsDir: dir, containerd });
    expect(fromHub.digest).toBe(hubApp.digest);
    // Both tags were cached above: nothing went upstream.
    expect(hub.countRequests()).toBe(0);
    expect(ghcr.countRequests()).toBe(0);
  });

  it("nothing outside the configured upstreams is ever dialed: ns and prefixes are lookup keys", async () => {
    hub.resetRequests();
    ghcr.resetRequests();
    const port = new URL(unlisted.url).port;
    const paths = [
      `/v2/library/alpine/manifests/latest?ns=127.0.0.1:${port}`,
      "/v2/library/alpine/manifests/latest?ns=127.0.0.1:6379",
      "/v2/library/alpine/manifests/latest?ns=169.254.169.254",
      "/v2/library/alpine/blobs/sha256:" + "a".repeat(64) + "?ns=metadata.google.internal",
      `/v2/127.0.0.1:${port}/x/manifests/latest`,
      "/v2/169.254.169.254/latest/manifests/meta-data",
      "/v2/unlisted.example.com/x/tags/list",
      `/v2/localhost:${port}/x/referrers/sha256:${"b".repeat(64)}`,
    ];
    for (const path of paths) {
      const res = await fetch(tug.url + path);
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe("NAME_UNKNOWN");
    }
    // tug's token endpoint routes scopes the same way.
    const token = await fetch(`${tug.url}/auth/token?service=x&scope=repository:127.0.0.1:${port}/x:pull`);
    expect(token.status).toBe(404);
    await token.arrayBuffer();
    expect(unlisted.requests.length).toBe(0);
    expect(hub.countRequests()).toBe(0);
    expect(ghcr.countRequests()).toBe(0);
  });

  it("an upstream's redirect to a link-local or metadata address is refused without dialing it", async () => {
    const locations = ["http://169.254.169.254/latest/meta-data/", "http://metadata.google.internal/computeMetadata/v1/", "http://[fe80::1]/x"];
    for (const [i, location] of locations.entries()) {
      const blob = `/v2/redirect/me/blobs/${redirected.layers[i]!.digest}`; // uncached: tug must go upstream
      hub.setInterceptor((req, res, logged) => {
        if (logged.path !== blob) return false;
        res.writeHead(307, { location });
        res.end();
        return true;
      });
      const started = Date.now();
      const res = await fetch(tug.url + blob);
      expect(res.status, location).toBe(502);
      expect(await res.text()).toContain("forbidden address");
      expect(Date.now() - started).toBeLessThan(1500);
    }
    hub.setInterceptor(undefined);
  });
});

describe("tags/list and referrers against distribution 2.8 (which ignores n)", () => {
  it("the upstream itself ignores n: all 25 tags in one answer", async () => {
    const res = await fetch(`${hub.directUrl}/v2/many/tags/tags/list?n=10`);
    expect(((await res.json()) as { tags: string[] }).tags.length).toBe(25);
  });

  it("tug paginates: n pages with tug's own Link, last, n=0, a huge n clamped; one upstream fetch for all of it", async () => {
    hub.resetRequests();
    const pages: string[][] = [];
    let next: string | undefined = "/v2/many/tags/tags/list?n=10";
    while (next !== undefined) {
      const res: Response = await fetch(tug.url + next);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { name: string; tags: string[] };
      expect(body.name).toBe("many/tags");
      pages.push(body.tags);
      next = /^<([^>]+)>; rel="next"$/.exec(res.headers.get("link") ?? "")?.[1];
    }
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat()).toEqual(SORTED);
    const after = await (await fetch(`${tug.url}/v2/many/tags/tags/list?last=${SORTED[20]}`)).json();
    expect(after).toEqual({ name: "many/tags", tags: SORTED.slice(21) });
    const zero = await fetch(`${tug.url}/v2/many/tags/tags/list?n=0`);
    expect(await zero.json()).toEqual({ name: "many/tags", tags: [] });
    expect(zero.headers.get("link")).toBeNull();
    const huge = await fetch(`${tug.url}/v2/many/tags/tags/list?n=99999999999999999999`);
    expect(((await huge.json()) as { tags: string[] }).tags).toEqual(SORTED);
    expect(huge.headers.get("link")).toBeNull();
    // The path-prefix name is kept in the answer and in Link.
    const prefixed = await fetch(`${tug.url}/v2/docker.io/many/tags/tags/list?n=24`);
    expect(prefixed.headers.get("link")).toBe(`</v2/docker.io/many/tags/tags/list?n=24&last=${SORTED[23]}>; rel="next"`);
    expect(((await prefixed.json()) as { name: string }).name).toBe("docker.io/many/tags");
    expect(hub.countRequests({ pathIncludes: "/tags/list" })).toBe(1);
    expect(await skopeoListTags(`docker://${tug.host}/many/tags`)).toEqual(SORTED);
  });

  it("a tag list past its time is served stale when the upstream fails", async () => {
    tug.advance(60_000);
    hub.setInterceptor((req, res, logged) => {
      if (!logged.path.endsWith("/tags/list")) return false;
      res.writeHead(503, { "content-type": "application/json" });
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"down"}]}');
      return true;
    });
    try {
      const res = await fetch(`${tug.url}/v2/many/tags/tags/list`);
      expect(res.status).toBe(200);
      expect(res.headers.get("x-cache")).toBe("STALE");
      expect(((await res.json()) as { tags: string[] }).tags).toEqual(SORTED);
      const never = await fetch(`${tug.url}/v2/team/app/tags/list`);
      expect(never.status).toBe(503);
      await never.arrayBuffer();
    } finally {
      hub.setInterceptor(undefined);
    }
  });

  it("referrers: an upstream without the API answers its own 404, passed through", async () => {
    const res = await fetch(`${tug.url}/v2/team/app/referrers/${hubApp.digest}`);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe("404 page not found\n");
    expect(hub.countRequests({ pathIncludes: `/v2/team/app/referrers/${hubApp.digest}` })).toBe(1);
  });
});
