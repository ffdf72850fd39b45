// Private images through tug (clientAuth) against a real token-auth upstream:
// Debian's docker-registry with `auth: token` and a test token server that
// signs RS256 JWTs (anonymous pull of public repositories, alice's password
// for private/*). Real clients (skopeo, podman, containerd's ctr) pull with
// and without credentials, cold and cached; nothing private ever reaches a
// client the upstream has not just confirmed, and no secret reaches a log.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { ctrPull, hostsToml, podmanPull, skopeoCopy, skopeoListTags, startContainerd, type RunningContainerd } from "../helpers/clients.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { buildImage, pushImage, type BuiltImage } from "../helpers/images.js";
import { startRegistry, type RunningRegistry } from "../helpers/registry.js";
import { startTokenServer, type RunningTokenServer } from "../helpers/token-server.js";
import { startTug, tempDir, type TestTug } from "../helpers/tug.js";

const ALICE = "alice:wonderland";
const CI_PASSWORD = "ci-bot-secret-password";

const shared = { files: { "etc/base-release": "NAME=shared-base\n".repeat(40) } };
const publicImage = buildImage({ format: "oci", cmd: ["/public"], layers: [shared, { files: { "app/public.txt": "public app\n".repeat(50) } }] });
const privateImage = buildImage({ format: "oci", cmd: ["/private"], layers: [shared, { files: { "app/secret.txt": "private app: do not leak\n".repeat(50) } }] });
const cdnImage = buildImage({ format: "docker", layers: [{ randomBytes: 200_000, seed: 7 }] });

function basic(creds: string): string {
  return `Basic ${Buffer.from(creds).toString("base64")}`;
}

function markPath(dataDir: string, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(dataDir, "private", "sha256", hex.slice(0, 2), `${hex}.json`);
}

let tokens: RunningTokenServer;
let registry: RunningRegistry;
let tug: TestTug;
let dataDir: string;
const logLines: string[] = [];
let containerd: RunningContainerd;
let logger: ReturnType<typeof createLogger>;

/** A token for `name` from tug's own token endpoint (the relay), as a client would get it. */
async function tokenFromTug(name: string, creds?: string): Promise<string> {
  const res = await fetch(`${tug.url}/auth/token?service=x&scope=repository:${name}:pull`, { headers: creds ? { authorization: basic(creds) } : {} });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

/** Every way to ask tug about the private image, none of which may answer anything but 401. */
function privateProbes(): Array<[string, string]> {
  const p = privateImage;
  return [
    ["GET", "/v2/private/app/manifests/v1"],
    ["HEAD", "/v2/private/app/manifests/v1"],
    ["GET", `/v2/private/app/manifests/${p.digest}`],
    ["HEAD", `/v2/private/app/manifests/${p.digest}`],
    ["GET", `/v2/private/app/blobs/${p.config.digest}`],
    ["HEAD", `/v2/private/app/blobs/${p.config.digest}`],
    ["GET", `/v2/private/app/blobs/${p.layers[1]!.digest}`],
    ["HEAD", `/v2/private/app/blobs/${p.layers[1]!.digest}`],
    ["GET", "/v2/private/app/tags/list"],
    ["GET", `/v2/docker.io/private/app/blobs/${p.layers[1]!.digest}`],
    ["GET", `/v2/private/app/blobs/${p.layers[1]!.digest}?ns=docker.io`],
  ];
}

async function expectNoLeak(res: Response): Promise<void> {
  const text = await res.text();
  expect(res.status).toBe(401);
  expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="http:\/\/127\.0\.0\.1:\d+\/auth\/token(\?ns=docker\.io)?",service="tug-test-registry",scope="repository:[a-z./]+:pull"$/);
  expect(res.headers.get("docker-content-digest")).toBeNull();
  for (const d of [privateImage.digest, privateImage.config.digest, ...privateImage.layers.map((l) => l.digest)]) {
    expect(text).not.toContain(d.slice(7));
  }
  expect(text).not.toContain("v1");
}

beforeAll(async () => {
  tokens = await startTokenServer({ users: { alice: "wonderland", ci: CI_PASSWORD } });
  registry = await startRegistry({ auth: tokens });
  await pushImage(registry.seedUrl, "public/app", "v1", publicImage);
  await pushImage(registry.seedUrl, "private/app", "v1", privateImage);
  await pushImage(registry.seedUrl, "private/cdn", "v1", cdnImage);
  dataDir = await tempDir();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  });
  logger = createLogger("trace", sink);
  tug = await startTug({ upstreams: { "docker.io": { url: registry.url, clientAuth: true } }, dataDir, logger });
  containerd = await startContainerd();
}, 60_000);

afterAll(async () => {
  await containerd?.stop();
  await tug?.stop();
  await registry?.stop();
  await tokens?.close();
});

describe("clientAuth: clients' own credentials reach private repositories through tug", () => {
  it("GET /v2/ is 401 with a Bearer challenge naming tug's token endpoint and the upstream's service", async () => {
    const res = await fetch(`${tug.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="${tug.url}/auth/token",service="tug-test-registry"`);
    await res.arrayBuffer();
    const withToken = await fetch(`${tug.url}/v2/`, { headers: { authorization: `Bearer ${await tokenFromTug("public/app")}` } });
    expect(withToken.status).toBe(200);
    await withToken.arrayBuffer();
  });

  it("skopeo --src-creds pulls the private image (cold): the relayed challenge, alice's token upstream only", async () => {
    registry.resetRequests();
    const before = tokens.requests.length;
    const copy = await skopeoCopy(`docker://${tug.host}/private/app:v1`, { creds: ALICE });
    expect(copy.manifestDigest).toBe(privateImage.digest);
    expect(copy.blobDigests).toEqual([privateImage.config.digest, ...privateImage.layers.map((l) => l.digest)].sort());
    await copy.cleanup();
    // skopeo's token request reached the real realm through tug, with alice's credentials and the upstream's scope.
    const relayed = tokens.requests.slice(before).filter((r) => r.user === "alice");
    expect(relayed.length).toBe(1);
    expect(relayed[0]!.query.getAll("scope")).toEqual(["repository:private/app:pull"]);
    expect(relayed[0]!.query.get("service")).toBe("tug-test-registry");
    // Each blob was fetched once, with a client token (tug's own identity is refused there).
    for (const b of [privateImage.config, ...privateImage.layers]) {
      expect(registry.countRequests({ method: "GET", pathIncludes: `/v2/private/app/blobs/${b.digest}` })).toBe(1);
    }
    // Marked private on disk before the bytes were: the shared layer too (it was first seen here).
    for (const d of [privateImage.digest, privateImage.config.digest, ...privateImage.layers.map((l) => l.digest)]) {
      expect(existsSync(markPath(dataDir, d))).toBe(true);
    }
  });

  it("skopeo --src-creds again (cached): alice's token reused by tug's endpoint, confirmed within 60 s, nothing asked upstream", async () => {
    registry.resetRequests();
    const before = tokens.requests.length;
    const copy = await skopeoCopy(`docker://${tug.host}/private/app:v1`, { creds: ALICE });
    expect(copy.manifestDigest).toBe(privateImage.digest);
    await copy.cleanup();
    expect(tokens.requests.length).toBe(before); // the relay answered from its per-identity cache
    expect(registry.countRequests()).toBe(0);
  });

  it("skopeo --src-creds 61 s later (cached content): its token is confirmed again with one HEAD, no blob or manifest GET upstream", async () => {
    tug.advance(61_000); // past the confirmation, still within the token's lifetime
    registry.resetRequests();
    const copy = await skopeoCopy(`docker://${tug.host}/private/app:v1`, { creds: ALICE });
    expect(copy.manifestDigest).toBe(privateImage.digest);
    await copy.cleanup();
    expect(registry.countRequests({ method: "GET" })).toBe(0);
    expect(registry.countRequests({ method: "HEAD", pathIncludes: "/v2/private/app/manifests/v1" })).toBe(1);
    expect(registry.countRequests()).toBe(1);
  });

  it("anonymous and wrong-password skopeo pulls of the cached private image fail with 401 from tug", async () => {
    registry.resetRequests();
    const served = JSON.stringify(await tug.runtime.metrics.servedBytes.get());
    await expect(skopeoCopy(`docker://${tug.host}/private/app:v1`)).rejects.toThrow(/401|unauthorized|authentication required/i);
    await expect(skopeoCopy(`docker://${tug.host}/private/app:v1`, { creds: "alice:wrong" })).rejects.toThrow(/401|unauthorized|incorrect/i);
    await expect(skopeoListTags(`docker://${tug.host}/private/app`)).rejects.toThrow(/401|unauthorized|authentication required/i);
    expect(registry.countRequests({ method: "GET", pathIncludes: "/blobs/" })).toBe(0);
    expect(JSON.stringify(await tug.runtime.metrics.servedBytes.get())).toBe(served); // zero bytes served
  });

  it("no token, an anonymous token, a garbage token: 401 on manifests, blobs, HEAD and tags/list, zero private bytes or metadata", async () => {
    const anonymous = await tokenFromTug("private/app");
    const wrong = await fetch(`${tug.url}/auth/token?service=x&scope=repository:private/app:pull`, { headers: { authorization: basic("alice:wrong") } });
    expect(wrong.status).toBe(401);
    await wrong.arrayBuffer();
    const served = tug.runtime.metrics.servedBytes;
    const before = JSON.stringify(await served.get());
    for (const auth of [undefined, `Bearer ${anonymous}`, "Bearer not-a-token", `Bearer ${tokens.mint([{ type: "repository", name: "public/app", actions: ["pull"] }])}`]) {
      for (const [method, path] of privateProbes()) {
        const res = await fetch(tug.url + path, { method, headers: auth ? { authorization: auth } : {} });
        await expectNoLeak(res);
      }
    }
    expect(JSON.stringify(await served.get())).toBe(before);
  });

  it("a private digest asked for through another repository is not served from the cache (upstream says 404)", async () => {
    const layer = privateImage.layers[1]!.digest;
    for (const auth of [undefined, `Bearer ${await tokenFromTug("public/app")}`, `Bearer ${await tokenFromTug("public/app", ALICE)}`]) {
      const res = await fetch(`${tug.url}/v2/public/app/blobs/${layer}`, { headers: auth ? { authorization: auth } : {} });
      expect(res.status).toBe(404);
      expect(await res.text()).toContain("BLOB_UNKNOWN");
      const manifest = await fetch(`${tug.url}/v2/public/app/manifests/${privateImage.digest}`, { headers: auth ? { authorization: auth } : {} });
      expect(manifest.status).toBe(404);
      await manifest.arrayBuffer();
    }
    expect(existsSync(markPath(dataDir, layer))).toBe(true);
  });

  it("public content stays servable to everyone: skopeo anonymous pulls the public image; the shared layer is proved public once", async () => {
    const base = publicImage.layers[0]!.digest;
    expect(existsSync(markPath(dataDir, base))).toBe(true); // first fetched by alice's private pull
    registry.resetRequests();
    const copy = await skopeoCopy(`docker://${tug.host}/public/app:v1`);
    expect(copy.manifestDigest).toBe(publicImage.digest);
    await copy.cleanup();
    expect(registry.countRequests({ method: "GET", pathIncludes: `/blobs/${base}` })).toBe(0); // served from cache
    expect(registry.countRequests({ method: "HEAD", pathIncludes: `/v2/public/app/blobs/${base}` })).toBe(1); // the proof
    expect(existsSync(markPath(dataDir, base))).toBe(false);
    // and now served to anyone with no upstream contact at all
    registry.resetRequests();
    const again = await fetch(`${tug.url}/v2/public/app/blobs/${base}`);
    expect(again.status).toBe(200);
    expect(again.headers.get("x-cache")).toBe("HIT");
    await again.arrayBuffer();
    expect(registry.countRequests()).toBe(0);
  });

  it("a confirmation is remembered at most 60 s per token and repository", async () => {
    const token = tokens.mint([{ type: "repository", name: "private/app", actions: ["pull"] }], "alice"); // one tug has never seen
    const get = async (): Promise<number> => {
      const res = await fetch(`${tug.url}/v2/private/app/blobs/${privateImage.layers[1]!.digest}`, { headers: { authorization: `Bearer ${token}` } });
      await res.arrayBuffer();
      return res.status;
    };
    registry.resetRequests();
    expect(await get()).toBe(200);
    expect(registry.countRequests({ method: "HEAD" })).toBe(1);
    expect(await get()).toBe(200);
    expect(registry.countRequests()).toBe(1);
    tug.advance(61_000);
    expect(await get()).toBe(200);
    expect(registry.countRequests({ method: "HEAD" })).toBe(2);
    expect(registry.countRequests({ method: "GET" })).toBe(0);
  });

  it("HEAD with alice's token answers the private manifest's and blob's headers", async () => {
    const token = await tokenFromTug("private/app", ALICE);
    const m = await fetch(`${tug.url}/v2/private/app/manifests/v1`, { method: "HEAD", headers: { authorization: `Bearer ${token}` } });
    expect(m.status).toBe(200);
    expect(m.headers.get("docker-content-digest")).toBe(privateImage.digest);
    expect(m.headers.get("content-length")).toBe(String(privateImage.size));
    const layer = privateImage.layers[1]!;
    const b = await fetch(`${tug.url}/v2/private/app/blobs/${layer.digest}`, { method: "HEAD", headers: { authorization: `Bearer ${token}` } });
    expect(b.status).toBe(200);
    expect(b.headers.get("content-length")).toBe(String(layer.size));
  });

  it("tags/list of the private repository: 401 anonymous (above), the list for alice (skopeo list-tags); public lists for anyone", async () => {
    expect(await skopeoListTags(`docker://${tug.host}/public/app`)).toEqual(["v1"]);
    expect(await skopeoListTags(`docker://${tug.host}/private/app`, { creds: ALICE })).toEqual(["v1"]);
    const res = await fetch(`${tug.url}/v2/private/app/tags/list`, { headers: { authorization: `Bearer ${await tokenFromTug("private/app", ALICE)}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: "private/app", tags: ["v1"] });
  });

  it("podman --creds pulls the private image from the cache", async () => {
    registry.resetRequests();
    const pulled = await podmanPull(`${tug.host}/private/app:v1`, { creds: ALICE });
    expect(pulled.digest).toBe(privateImage.digest);
    expect(`sha256:${pulled.imageId}`).toBe(privateImage.config.digest);
    await pulled.cleanup();
    expect(registry.countRequests({ method: "GET" })).toBe(0);
  });

  it("containerd (ctr --user, ?ns=docker.io) pulls the private image: challenge on the manifest, OAuth POST relayed, GET fallback", async () => {
    const before = tokens.requests.length;
    const pulled = await ctrPull("docker.io/private/app:v1", { hostsDir: hostsToml(tug.url), user: ALICE, containerd, namespace: "alice" });
    expect(pulled.digest).toBe(privateImage.digest);
    expect(pulled.unpacked).toBe(true);
    const seen = tokens.requests.slice(before);
    expect(seen.some((r) => r.method === "POST" && r.status === 405)).toBe(true);
    // The GET fallback with alice's credentials: relayed, or answered from the relay's per-identity cache.
    expect(seen.every((r) => r.method === "POST" || r.user === "alice")).toBe(true);
    await expect(ctrPull("docker.io/private/app:v1", { hostsDir: hostsToml(tug.url), containerd, namespace: "anonymous" })).rejects.toThrow(/401|unauthorized/i);
  });

  it("after a restart on the same dataDir the marks hold: anonymous refused, alice served from cache", async () => {
    await tug.stop();
    tug = await startTug({ upstreams: { "docker.io": { url: registry.url, clientAuth: true } }, dataDir, logger });
    for (const [method, path] of privateProbes()) {
      const res = await fetch(tug.url + path, { method });
      await expectNoLeak(res);
    }
    registry.resetRequests();
    const copy = await skopeoCopy(`docker://${tug.host}/private/app:v1`, { creds: ALICE });
    expect(copy.manifestDigest).toBe(privateImage.digest);
    await copy.cleanup();
    expect(registry.countRequests({ method: "GET", pathIncludes: "/blobs/" })).toBe(0);
  });

  it("a blob redirected to a CDN on another address gets no Authorization, Cookie or Proxy-Authorization; a metadata redirect is refused", async () => {
    const cdn: FaultServer = await startFaultServer("127.0.0.2");
    try {
      const layer = cdnImage.layers[0]!;
      cdn.on(`/cdn/${layer.digest}`, { kind: "bytes", body: layer.data });
      registry.setInterceptor((req, res, logged) => {
        if (req.method === "GET" && logged.path === `/v2/private/cdn/blobs/${layer.digest}` && req.headers.authorization) {
          res.writeHead(307, { location: `${cdn.url}/cdn/${layer.digest}?sig=abc`, "set-cookie": "session=1" });
          res.end();
          return true;
        }
        if (logged.path === `/v2/private/cdn/blobs/${cdnImage.config.digest}` && req.method === "GET" && req.headers.authorization) {
          res.writeHead(307, { location: "http://169.254.169.254/latest/meta-data/" });
          res.end();
          return true;
        }
        return false;
      });
      const token = await tokenFromTug("private/cdn", ALICE);
      const res = await fetch(`${tug.url}/v2/private/cdn/blobs/${layer.digest}`, { headers: { authorization: `Bearer ${token}`, cookie: "c=1", "proxy-authorization": "Basic eDp5" } });
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(layer.data)).toBe(true);
      const seen = cdn.requests.filter((r) => r.path.startsWith("/cdn/"));
      expect(seen.length).toBe(1);
      expect(seen[0]!.headers.authorization).toBeUndefined();
      expect(seen[0]!.headers.cookie).toBeUndefined();
      expect(seen[0]!.headers["proxy-authorization"]).toBeUndefined();
      const started = Date.now();
      const meta = await fetch(`${tug.url}/v2/private/cdn/blobs/${cdnImage.config.digest}`, { headers: { authorization: `Bearer ${token}` } });
      expect(meta.status).toBe(502);
      expect(await meta.text()).toContain("forbidden address");
      expect(Date.now() - started).toBeLessThan(1500); // refused, not dialed and timed out
    } finally {
      registry.setInterceptor(undefined);
      await cdn.close();
    }
  });

  it("a configured-credential upstream pulls the private image with no client credentials; tug fetches one token per scope", async () => {
    const ciTug = await startTug({
      upstreams: { "docker.io": { url: registry.url, username: "ci", passwordEnv: "TUG_TEST_CI_PASSWORD" } },
      env: { TUG_TEST_CI_PASSWORD: CI_PASSWORD },
      cache: { tagTTL: "0s" },
    });
    try {
      const before = tokens.requests.length;
      registry.resetRequests();
      for (let i = 0; i < 4; i++) {
        const copy = await skopeoCopy(`docker://${ciTug.host}/private/app:v1`);
        expect(copy.manifestDigest).toBe(privateImage.digest);
        await copy.cleanup();
      }
      // tagTTL 0: every pull revalidates the tag upstream, with the token fetched once.
      expect(registry.countRequests({ pathIncludes: "/v2/private/app/manifests/v1" })).toBeGreaterThanOrEqual(4);
      const fetched = tokens.requests.slice(before);
      expect(fetched.length).toBe(1);
      expect(fetched[0]!.user).toBe("ci");
      expect(fetched[0]!.query.getAll("scope")).toEqual(["repository:private/app:pull"]);
    } finally {
      await ciTug.stop();
    }
  });

  it("no password, token or credential appears in tug's logs or metrics", async () => {
    const metrics = await tug.runtime.metrics.registry.metrics();
    const haystack = logLines.join("") + metrics;
    expect(logLines.length).toBeGreaterThan(20); // trace level: the access log and more
    for (const secret of ["wonderland", CI_PASSWORD, Buffer.from(ALICE).toString("base64"), ...tokens.issued.map((t) => t.split(".")[2]!)]) {
      expect(haystack).not.toContain(secret);
    }
  });
});
