// The client-access gate against a scripted token-auth upstream (node:http,
// for what a real registry cannot be made to do on cue: hold a blob half sent,
// fail on demand, answer 404 for private repositories like some registries).
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientAccess, type Requester } from "../../src/auth/client-access.js";
import { PrivateIndex } from "../../src/auth/private-index.js";
import { BlobStore } from "../../src/cache/blob-store.js";
import { Layout } from "../../src/cache/layout.js";
import { ManifestStore } from "../../src/cache/manifest-store.js";
import type { BlobResult, PullThrough } from "../../src/cache/pull-through.js";
import { TagLists } from "../../src/cache/tag-lists.js";
import { parseConfig } from "../../src/config/index.js";
import { parseDigest } from "../../src/oci/digest.js";
import { silentLogger } from "../../src/observability/logger.js";
import { RegistryClient } from "../../src/upstream/registry-client.js";
import { UpstreamTable, type Route } from "../../src/upstream/routing.js";
import { TokenCache } from "../../src/upstream/token-cache.js";
import { makeFixture, sha256 } from "../helpers/fixtures.js";
import { startTug, tempDir, type TestTug } from "../helpers/tug.js";

interface Scripted {
  url: string;
  requests: Array<{ method: string; path: string; auth: string | undefined }>;
  /** 401 (default, like distribution and Docker Hub) or 404 (like some registries) for a repository the token cannot read. */
  privateStatus: 401 | 404;
  /** Answer 503 to manifest HEADs and GETs. */
  failManifests: boolean;
  /** Digest of a blob to send half of, then hold until release() is called. */
  hold: string | undefined;
  release(): void;
  close(): Promise<void>;
}

const pub = makeFixture(64 * 1024);
const priv = makeFixture(64 * 1024);
const referrersIndex = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] }));

/** Readable repositories per token: "anon" reads public/*, "alice" everything. */
function readable(token: string | undefined, repo: string): boolean {
  if (token === "alice") return true;
  return token === "anon" && repo.startsWith("public/");
}

async function startScripted(): Promise<Scripted> {
  let releaseHeld: () => void = () => undefined;
  let held = new Promise<void>((resolve) => (releaseHeld = resolve));
  const content: Record<string, { manifests: Record<string, Buffer>; blobs: Record<string, Buffer>; tags: string[] }> = {
    "public/app": { manifests: { v1: pub.manifest, [pub.manifestDigest]: pub.manifest }, blobs: { [pub.blobDigest]: pub.blob }, tags: ["v1"] },
    "private/app": { manifests: { v1: priv.manifest, [priv.manifestDigest]: priv.manifest }, blobs: { [priv.blobDigest]: priv.blob, [pub.blobDigest]: pub.blob }, tags: ["v2", "v1"] },
  };
  const s: Scripted = {
    url: "",
    requests: [],
    privateStatus: 401,
    failManifests: false,
    hold: undefined,
    release: () => releaseHeld(),
    close: async () => {
      releaseHeld();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://x");
    s.requests.push({ method: req.method ?? "GET", path: url.pathname + url.search, auth: req.headers.authorization });
    const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(req.method === "HEAD" ? undefined : JSON.stringify(body));
    };
    if (url.pathname === "/token") {
      const auth = req.headers.authorization;
      if (auth !== undefined && auth !== `Basic ${Buffer.from("alice:pw").toString("base64")}`) return json(401, { details: "bad password" });
      return json(200, { token: auth ? "alice" : "anon", expires_in: 300 });
    }
    const challenge = (repo: string): Record<string, string> => ({
      "www-authenticate": `Bearer realm="${s.url}/token",service="reg-svc"${repo ? `,scope="repository:${repo}:pull"` : ""}`,
    });
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (url.pathname === "/v2/") return token ? json(200, {}) : json(401, { errors: [] }, challenge(""));
    const m = /^\/v2\/(.+)\/(manifests|blobs|tags|referrers)\/([^/]+)$/.exec(url.pathname);
    if (!m) return json(404, { errors: [{ code: "NAME_UNKNOWN" }] });
    const [, repo = "", kind, ref = ""] = m;
    if (!readable(token, repo)) {
      if (token && s.privateStatus === 404) return json(404, { errors: [{ code: "NAME_UNKNOWN" }] });
      return json(401, { errors: [{ code: "UNAUTHORIZED" }] }, challenge(repo));
    }
    const r = content[repo];
    if (kind === "referrers") return r ? json(200, JSON.parse(referrersIndex.toString()), { "content-type": "application/vnd.oci.image.index.v1+json" }) : json(404, {});
    if (kind === "tags") return r ? json(200, { name: repo, tags: r.tags }) : json(404, { errors: [{ code: "NAME_UNKNOWN" }] });
    if (kind === "manifests") {
      if (s.failManifests) return json(503, { errors: [{ code: "UNAVAILABLE" }] });
      const body = r?.manifests[ref];
      if (!body) return json(404, { errors: [{ code: "MANIFEST_UNKNOWN" }] });
      res.writeHead(200, { "content-type": pub.mediaType, "content-length": String(body.length), "docker-content-digest": sha256(body) });
      return void res.end(req.method === "HEAD" ? undefined : body);
    }
    const blob = r?.blobs[ref];
    if (!blob) return json(404, { errors: [{ code: "BLOB_UNKNOWN" }] });
    res.writeHead(200, { "content-length": String(blob.length) });
    if (req.method === "HEAD") return void res.end();
    if (s.hold === ref) {
      res.write(blob.subarray(0, blob.length / 2));
      void held.then(() => res.end(blob.subarray(blob.length / 2)));
      held = held.then(() => undefined);
      return;
    }
    res.end(blob);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return s;
}

let reg: Scripted;
let tug: TestTug;

beforeAll(async () => {
  reg = await startScripted();
  tug = await startTug({
    upstreams: { "registry.test": { url: reg.url, clientAuth: true }, "mirror.test": reg.url },
    cache: { tagTTL: "30s" },
  });
});
afterAll(async () => {
  await tug?.stop();
  await reg?.close();
});

const bearer = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } });

describe("clientAuth gate", () => {
  it("challenges name tug's endpoint with the client's own repository name (prefix, ns, forwarded host)", async () => {
    const viaPrefix = await fetch(`${tug.url}/v2/registry.test/private/app/manifests/v1`);
    expect(viaPrefix.status).toBe(401);
    expect(viaPrefix.headers.get("www-authenticate")).toBe(`Bearer realm="${tug.url}/auth/token",service="reg-svc",scope="repository:registry.test/private/app:pull"`);
    await viaPrefix.arrayBuffer();
    const viaNs = await fetch(`${tug.url}/v2/private/app/manifests/v1?ns=registry.test`);
    expect(viaNs.headers.get("www-authenticate")).toBe(`Bearer realm="${tug.url}/auth/token?ns=registry.test",service="reg-svc",scope="repository:private/app:pull"`);
    await viaNs.arrayBuffer();
    const forwarded = await fetch(`${tug.url}/v2/private/app/blobs/${priv.blobDigest}`, { headers: { "x-forwarded-proto": "https", "x-forwarded-host": "tug.example.com" } });
    expect(forwarded.status).toBe(401);
    expect(forwarded.headers.get("www-authenticate")).toBe(`Bearer realm="https://tug.example.com/auth/token",service="reg-svc",scope="repository:private/app:pull"`);
    await forwarded.arrayBuffer();
  });

  it("a private blob being filled is followed by no one the upstream has not confirmed", async () => {
    reg.hold = priv.blobDigest;
    const alice = fetch(`${tug.url}/v2/private/app/blobs/${priv.blobDigest}`, bearer("alice"));
    const aliceRes = await alice;
    expect(aliceRes.status).toBe(200);
    const aliceBody = aliceRes.arrayBuffer();
    // While alice's fill is under way (half the bytes are in tug's temp file):
    const viaPublic = await fetch(`${tug.url}/v2/public/app/blobs/${priv.blobDigest}`);
    expect(viaPublic.status).toBe(404); // tug's identity asked upstream: not in public/app
    await viaPublic.arrayBuffer();
    for (const init of [{}, bearer("anon"), bearer("forged")]) {
      const res = await fetch(`${tug.url}/v2/private/app/blobs/${priv.blobDigest}`, init);
      expect(res.status).toBe(401);
      await res.arrayBuffer();
    }
    const viaOtherUpstream = await fetch(`${tug.url}/v2/mirror.test/private/app/blobs/${priv.blobDigest}`);
    expect(viaOtherUpstream.status).toBe(403); // no clientAuth there: the upstream's refusal of tug
    await viaOtherUpstream.arrayBuffer();
    reg.release();
    expect(Buffer.from(await aliceBody).equals(priv.blob)).toBe(true);
    reg.hold = undefined;
    expect(reg.requests.filter((r) => r.method === "GET" && r.path === `/v2/private/app/blobs/${priv.blobDigest}`).length).toBe(1);
  });

  it("a digest proved public by tug's own identity loses its mark and is served to anyone", async () => {
    // alice fetches a layer both repositories share through the private one first: it is marked private…
    const mark = join(tug.dataDir, "private", "sha256", pub.blobDigest.slice(7, 9), `${pub.blobDigest.slice(7)}.json`);
    const res = await fetch(`${tug.url}/v2/private/app/blobs/${pub.blobDigest}`, bearer("alice"));
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(existsSync(mark)).toBe(true);
    // …an anonymous client through public/app gets it from the cache once tug's own HEAD there succeeds
    const before = reg.requests.length;
    const anon = await fetch(`${tug.url}/v2/public/app/blobs/${pub.blobDigest}`);
    expect(anon.status).toBe(200);
    expect(anon.headers.get("x-cache")).toBe("HIT");
    expect(Buffer.from(await anon.arrayBuffer()).equals(pub.blob)).toBe(true);
    expect(reg.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual([`HEAD /v2/public/app/blobs/${pub.blobDigest}`]);
    expect(existsSync(mark)).toBe(false);
  });

  it("private tags: resolved with the client's token, never from the shared tag store; stale only for a confirmed client", async () => {
    const first = await fetch(`${tug.url}/v2/private/app/manifests/v1`, bearer("alice"));
    expect(first.status).toBe(200);
    expect(first.headers.get("docker-content-digest")).toBe(priv.manifestDigest);
    await first.arrayBuffer();
    const before = reg.requests.length;
    const again = await fetch(`${tug.url}/v2/private/app/manifests/v1`, bearer("alice"));
    expect(again.headers.get("x-cache")).toBe("HIT");
    await again.arrayBuffer();
    expect(reg.requests.length).toBe(before);
    // past tagTTL (30 s) but within the confirmation (60 s), the upstream failing: stale for alice
    tug.advance(40_000);
    reg.failManifests = true;
    try {
      const stale = await fetch(`${tug.url}/v2/private/app/manifests/v1`, bearer("alice"));
      expect(stale.status).toBe(200);
      expect(stale.headers.get("x-cache")).toBe("STALE");
      await stale.arrayBuffer();
      tug.advance(30_000); // confirmation gone: nothing to confirm her with
      const refused = await fetch(`${tug.url}/v2/private/app/manifests/v1`, bearer("alice"));
      expect(refused.status).toBe(503);
      await refused.arrayBuffer();
    } finally {
      reg.failManifests = false;
    }
  });

  it("tags/list and referrers of a private repository: 401 unless the upstream accepts the client's token", async () => {
    tug.advance(10_000); // past the failures the previous test left in the negative cache
    for (const init of [{}, bearer("anon")]) {
      const tags = await fetch(`${tug.url}/v2/private/app/tags/list`, init);
      expect(tags.status).toBe(401);
      expect(await tags.text()).not.toContain("v2");
      const refs = await fetch(`${tug.url}/v2/private/app/referrers/${priv.manifestDigest}`, init);
      expect(refs.status).toBe(401);
      await refs.arrayBuffer();
    }
    const tags = await fetch(`${tug.url}/v2/private/app/tags/list`, bearer("alice"));
    expect(await tags.json()).toEqual({ name: "private/app", tags: ["v1", "v2"] });
    const before = reg.requests.length;
    const cached = await fetch(`${tug.url}/v2/private/app/tags/list?n=1`, bearer("alice"));
    expect(await cached.json()).toEqual({ name: "private/app", tags: ["v1"] });
    expect(cached.headers.get("link")).toBe('</v2/private/app/tags/list?n=1&last=v1>; rel="next"');
    expect(reg.requests.length).toBe(before);
    const forged = await fetch(`${tug.url}/v2/private/app/tags/list`, bearer("forged"));
    expect(forged.status).toBe(401); // the cached list is not served to an unconfirmed token
    await forged.arrayBuffer();
    const refs = await fetch(`${tug.url}/v2/private/app/referrers/${priv.manifestDigest}`, bearer("alice"));
    expect(refs.status).toBe(200);
    expect(refs.headers.get("content-type")).toBe("application/vnd.oci.image.index.v1+json");
    expect(Buffer.from(await refs.arrayBuffer()).equals(referrersIndex)).toBe(true);
  });

  it("a registry that answers 404 instead of 401 for private repositories still serves a client holding a token", async () => {
    const other = await startScripted();
    other.privateStatus = 404;
    const t = await startTug({ upstreams: { "registry.test": { url: other.url, clientAuth: true } } });
    try {
      const anon = await fetch(`${t.url}/v2/private/app/manifests/v1`);
      expect(anon.status).toBe(404);
      await anon.arrayBuffer();
      const alice = await fetch(`${t.url}/v2/private/app/manifests/v1`, bearer("alice"));
      expect(alice.status).toBe(200);
      expect(alice.headers.get("docker-content-digest")).toBe(priv.manifestDigest);
      await alice.arrayBuffer();
      const anonByDigest = await fetch(`${t.url}/v2/private/app/manifests/${priv.manifestDigest}`, bearer("anon"));
      expect(anonByDigest.status).toBe(404);
      await anonByDigest.arrayBuffer();
    } finally {
      await t.stop();
      await other.close();
    }
  });
});

describe("clientAuth gate: a digest turning private while a plain answer is under way", () => {
  it("re-checks the marks after the pull-through answers, and drops the body it will not send", async () => {
    const dir = await tempDir();
    const layout = new Layout(dir);
    await mkdir(layout.tmpDir, { recursive: true });
    const config = parseConfig({ dataDir: dir, upstreams: { "registry.test": { url: reg.url, clientAuth: true, default: true } } }, {});
    const upstream = config.upstreams["registry.test"]!;
    const agent = new Agent();
    const base = new RegistryClient(upstream, { dispatcher: agent, tokens: new TokenCache(), timeouts: { headers: 2000, body: 2000 }, logger: silentLogger() });
    const clientFor = (r: Route): RegistryClient => (r.clientToken !== undefined ? base.withClientToken(r.clientToken) : base);
    const index = new PrivateIndex({ layout, now: Date.now });
    const digest = parseDigest(priv.blobDigest);
    const body = Readable.from([priv.blob]);
    // The pull-through's answer (e.g. following a fill) arrives after a private fetch of the same digest marked it.
    const pullThrough = {
      blob: async (): Promise<BlobResult> => {
        await index.addRoute(digest, { upstream, repository: "private/app" });
        return { status: 200, digest, size: priv.blob.length, range: undefined, body, cache: "MISS" };
      },
    } as unknown as PullThrough;
    const access = new ClientAccess({
      pullThrough,
      clientFor,
      upstreams: new UpstreamTable(config),
      index,
      tagLists: new TagLists({ now: Date.now, ttl: 0, staleIfError: 0, logger: silentLogger() }),
      blobs: new BlobStore(layout),
      manifests: new ManifestStore(layout, { memoryBytes: 0 }),
      now: Date.now,
      logger: silentLogger(),
      options: { tagTTL: 0, staleIfError: 0 },
    });
    const anonymous: Requester = { token: undefined, realm: "http://tug/auth/token", clientName: "public/app" };
    await expect(access.blob({ upstream, repository: "public/app" }, digest, "GET", undefined, anonymous)).rejects.toMatchObject({ code: "BLOB_UNKNOWN" });
    expect(body.destroyed).toBe(true);
    await agent.close();
  });
});
