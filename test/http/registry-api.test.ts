// The edge: grammar checks before any I/O, method rules, error JSON, headers.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { startTug, type TestTug } from "../helpers/tug.js";
import { makeFixture } from "../helpers/fixtures.js";

let upstream: FaultServer;
let tug: TestTug;
const fx = makeFixture(1024);

beforeAll(async () => {
  upstream = await startFaultServer();
  upstream.on("/v2/library/alpine/manifests/3.20", { kind: "bytes", body: fx.manifest, headers: { "content-type": fx.mediaType } });
  tug = await startTug({ upstreams: { "docker.io": upstream.url } });
});
afterAll(async () => {
  await tug.stop();
  await upstream.close();
});

async function call(path: string, init?: RequestInit): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(tug.url + path, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

describe("the /v2 API edge", () => {
  it("GET /v2/ answers {} with the API version header", async () => {
    const r = await call("/v2/");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({});
    expect(r.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
  });

  it.each([
    ["/v2/Library/alpine/manifests/latest", 400, "NAME_INVALID"],
    ["/v2/a//b/manifests/latest", 400, "NAME_INVALID"],
    ["/v2/a%2Fb/manifests/latest", 400, "NAME_INVALID"],
    ["/v2/library/alpine/manifests/.bad", 404, "MANIFEST_UNKNOWN"],
    ["/v2/library/alpine/manifests/sha256:ABC", 400, "DIGEST_INVALID"],
    ["/v2/library/alpine/blobs/sha256:" + "A".repeat(64), 400, "DIGEST_INVALID"],
    ["/v2/library/alpine/blobs/sha256:" + "a".repeat(63), 400, "DIGEST_INVALID"],
    ["/v2/library/alpine/blobs/latest", 400, "DIGEST_INVALID"],
    ["/v2/library/alpine/manifests/latest?ns=127.0.0.1:6379", 404, "NAME_UNKNOWN"],
    ["/v2/library/alpine/manifests/latest?ns=169.254.169.254", 404, "NAME_UNKNOWN"],
    ["/v2/evil.example.com/x/manifests/latest", 404, "NAME_UNKNOWN"],
    ["/v2/library/alpine/nothing/here", 404, "NAME_UNKNOWN"],
    ["/nothing", 404, "NAME_UNKNOWN"],
  ])("%s → %i %s, with no upstream contact", async (path, status, code) => {
    const before = upstream.requests.length;
    const r = await call(path);
    expect(r.status).toBe(status);
    expect(r.json.errors[0].code).toBe(code);
    expect(typeof r.json.errors[0].message).toBe("string");
    expect(r.headers.get("content-type")).toContain("application/json");
    expect(r.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
    expect(upstream.requests.length).toBe(before);
  });

  it.each(["POST", "PUT", "PATCH", "DELETE"])("%s is 405 UNSUPPORTED, after the grammar", async (method) => {
    const before = upstream.requests.length;
    const ok = await call("/v2/library/alpine/manifests/3.20", { method });
    expect(ok.status).toBe(405);
    expect(ok.json.errors[0].code).toBe("UNSUPPORTED");
    const blob = await call(`/v2/library/alpine/blobs/uploads/`, { method });
    expect(blob.status).toBe(405);
    const bad = await call("/v2/library/alpine/manifests/sha256:nothex", { method });
    expect(bad.status).toBe(400);
    expect(upstream.requests.length).toBe(before);
  });

  it("HEAD of an error has the status and no body", async () => {
    const res = await fetch(tug.url + "/v2/Bad/manifests/x", { method: "HEAD" });
    expect(res.status).toBe(400);
    expect(await res.text()).toBe("");
  });

  it("a manifest carries exact bytes, its media type, digest and length on GET and HEAD", async () => {
    const get = await fetch(tug.url + "/v2/library/alpine/manifests/3.20");
    expect(get.status).toBe(200);
    expect(Buffer.from(await get.arrayBuffer()).equals(fx.manifest)).toBe(true);
    expect(get.headers.get("content-type")).toBe(fx.mediaType);
    expect(get.headers.get("docker-content-digest")).toBe(fx.manifestDigest);
    expect(get.headers.get("content-length")).toBe(String(fx.manifest.length));
    const head = await fetch(tug.url + "/v2/alpine/manifests/3.20", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(fx.manifest.length));
    expect(head.headers.get("docker-content-digest")).toBe(fx.manifestDigest);
    expect(head.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
  });
});
