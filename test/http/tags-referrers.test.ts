// tags/list and referrers at the edge, against scripted upstreams: the
// upstream's Link pages followed (on its own origin and path only), tug's own
// pagination, caps, and referrers passed through with their Link re-pointed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { paginateTags, MAX_TAGS_PER_PAGE } from "../../src/http/tags-route.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { startTug, type TestTug } from "../helpers/tug.js";

let up: FaultServer;
let other: FaultServer;
let tug: TestTug;
const digest = `sha256:${"c".repeat(64)}`;
const BIG = Array.from({ length: 1500 }, (_, i) => `t${String(i).padStart(4, "0")}`);

function list(name: string, tags: unknown, link?: string): { kind: "bytes"; body: Buffer; headers: Record<string, string> } {
  return { kind: "bytes", body: Buffer.from(JSON.stringify({ name, tags })), headers: { "content-type": "application/json", ...(link ? { link } : {}) } };
}

beforeAll(async () => {
  up = await startFaultServer();
  other = await startFaultServer();
  up.on("/v2/paged/app/tags/list", {
    kind: "handler",
    fn: (req, res) => {
      const last = new URL(req.url ?? "/", "http://x").searchParams.get("last");
      const page = last === null ? { tags: ["c", "a", "b"], link: '</v2/paged/app/tags/list?last=c&n=3>; rel="next"' } : last === "c" ? { tags: ["e", "d", "a"], link: `<${up.url}/v2/paged/app/tags/list?last=e&n=3>; rel="next"` } : { tags: ["f"] };
      res.writeHead(200, { "content-type": "application/json", ...(page.link ? { link: page.link } : {}) });
      res.end(JSON.stringify({ name: "paged/app", tags: page.tags }));
    },
  });
  up.on("/v2/offorigin/app/tags/list", list("offorigin/app", ["a"], `<${other.url}/v2/offorigin/app/tags/list?last=a>; rel="next"`));
  up.on("/v2/offpath/app/tags/list", list("offpath/app", ["a"], '</v2/someone/else/tags/list?last=a>; rel="next"'));
  up.on("/v2/empty/app/tags/list", list("empty/app", null));
  up.on("/v2/big/app/tags/list", list("big/app", [...BIG].reverse()));
  up.on(`/v2/ref/app/referrers/${digest}`, {
    kind: "bytes",
    body: Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'),
    headers: { "content-type": "application/vnd.oci.image.index.v1+json", "oci-filters-applied": "artifactType", link: `</v2/ref/app/referrers/${digest}?n=1&last=x>; rel="next"` },
  });
  up.on(`/v2/broken/app/referrers/${digest}`, { kind: "status", status: 500 });
  tug = await startTug({ upstreams: { "docker.io": up.url } });
});
afterAll(async () => {
  await tug.stop();
  await up.close();
  await other.close();
});

async function get(path: string): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(tug.url + path);
  const text = await res.text();
  return { status: res.status, json: text.startsWith("{") ? JSON.parse(text) : text, headers: res.headers };
}

describe("tags/list", () => {
  it("follows the upstream's Link pages (relative and absolute), merges, dedupes and sorts; kept briefly", async () => {
    const r = await get("/v2/paged/app/tags/list");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ name: "paged/app", tags: ["a", "b", "c", "d", "e", "f"] });
    expect(r.headers.get("x-cache")).toBe("MISS");
    expect(up.count({ pathIncludes: "/v2/paged/app/tags/list" })).toBe(3);
    const again = await get("/v2/paged/app/tags/list?n=2&last=b");
    expect(again.json.tags).toEqual(["c", "d"]);
    expect(again.headers.get("x-cache")).toBe("HIT");
    expect(again.headers.get("link")).toBe('</v2/paged/app/tags/list?n=2&last=d>; rel="next"');
    expect(up.count({ pathIncludes: "/v2/paged/app/tags/list" })).toBe(3);
    tug.advance(31_000); // at most 30 s
    await get("/v2/paged/app/tags/list");
    expect(up.count({ pathIncludes: "/v2/paged/app/tags/list" })).toBe(6);
  });

  it("never follows a Link off the upstream's origin or off this repository's tags/list", async () => {
    for (const name of ["offorigin/app", "offpath/app"]) {
      const r = await get(`/v2/${name}/tags/list`);
      expect(r.status).toBe(502);
    }
    expect(other.requests.length).toBe(0);
    expect(up.count({ pathIncludes: "/v2/someone/else" })).toBe(0);
  });

  it("a repository with no tags (tags: null) is an empty list", async () => {
    expect((await get("/v2/empty/app/tags/list")).json).toEqual({ name: "empty/app", tags: [] });
  });

  it("a huge n is clamped to 1000 with a Link to the rest; n=0 is empty without Link; a bad n is 400", async () => {
    const huge = await get("/v2/big/app/tags/list?n=1000000000");
    expect(huge.json.tags.length).toBe(MAX_TAGS_PER_PAGE);
    expect(huge.json.tags[0]).toBe("t0000");
    expect(huge.headers.get("link")).toBe('</v2/big/app/tags/list?n=1000&last=t0999>; rel="next"');
    const rest = await get("/v2/big/app/tags/list?n=1000&last=t0999");
    expect(rest.json.tags).toEqual(BIG.slice(1000));
    expect(rest.headers.get("link")).toBeNull();
    const zero = await get("/v2/big/app/tags/list?n=0");
    expect(zero.json.tags).toEqual([]);
    expect(zero.headers.get("link")).toBeNull();
    expect((await get("/v2/big/app/tags/list?n=-1")).status).toBe(400);
    expect((await get("/v2/big/app/tags/list?n=ten")).status).toBe(400);
    const ns = await get("/v2/big/app/tags/list?n=1&ns=docker.io");
    expect(ns.headers.get("link")).toBe('</v2/big/app/tags/list?n=1&last=t0000&ns=docker.io>; rel="next"');
  });

  it("paginateTags: last is exclusive, past the end is empty", () => {
    const all = ["a", "b", "c"];
    expect(paginateTags(all, null, "b")).toEqual({ tags: ["c"] });
    expect(paginateTags(all, "1", "c")).toEqual({ tags: [] });
    expect(paginateTags(all, "2", "0")).toEqual({ tags: ["a", "b"], next: { n: 2, last: "b" } });
    expect(paginateTags(all, "3", null)).toEqual({ tags: ["a", "b", "c"] });
  });
});

describe("referrers", () => {
  it("are passed through with artifactType, OCI-Filters-Applied, and a next Link pointed back at tug under the client's name", async () => {
    const res = await fetch(`${tug.url}/v2/docker.io/ref/app/referrers/${digest}?artifactType=application/vnd.example`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/vnd.oci.image.index.v1+json");
    expect(res.headers.get("oci-filters-applied")).toBe("artifactType");
    expect(res.headers.get("link")).toBe(`</v2/docker.io/ref/app/referrers/${digest}?n=1&last=x>; rel="next"`);
    expect(((await res.json()) as { manifests: unknown[] }).manifests).toEqual([]);
    const seen = up.requests.find((r) => r.path.startsWith(`/v2/ref/app/referrers/${digest}`))!;
    expect(seen.path).toBe(`/v2/ref/app/referrers/${digest}?artifactType=application%2Fvnd.example`);
    expect(seen.headers.accept).toBe("application/vnd.oci.image.index.v1+json");
  });

  it("an upstream's 404 (no referrers API) passes through; its 5xx is tug's 502; a bad digest is 400 before any I/O", async () => {
    const missing = await fetch(`${tug.url}/v2/none/app/referrers/${digest}`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain("not scripted");
    const broken = await fetch(`${tug.url}/v2/broken/app/referrers/${digest}`);
    expect(broken.status).toBe(502);
    await broken.arrayBuffer();
    const before = up.requests.length;
    const bad = await fetch(`${tug.url}/v2/ref/app/referrers/sha256:nothex`);
    expect(bad.status).toBe(400);
    await bad.arrayBuffer();
    expect(up.requests.length).toBe(before);
  });
});
