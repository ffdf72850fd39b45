// The log: one JSON line per request with method, path, status, bytes, ms,
// cache outcome, upstream and request id; no secrets; probes at debug; pretty
// output on a terminal or by flag.
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture } from "../helpers/fixtures.js";
import { tempDir, testConfig } from "../helpers/tug.js";
import { createLogger } from "../../src/observability/logger.js";
import { createRuntime } from "../../src/runtime.js";
import { startServer, type RunningServer } from "../../src/main.js";

const fx = makeFixture(32 * 1024);
let upstream: FaultServer;
let server: RunningServer;
let lines: string[] = [];

beforeAll(async () => {
  upstream = await startFaultServer();
  upstream.on("/v2/library/alpine/manifests/3.20", { kind: "bytes", body: fx.manifest, headers: { "content-type": fx.mediaType } });
  upstream.on(`/v2/library/alpine/blobs/${fx.blobDigest}`, { kind: "bytes", body: fx.blob });
  const config = testConfig({ upstreams: { "docker.io": upstream.url }, dataDir: await tempDir() });
  const sink = new PassThrough();
  sink.on("data", (c: Buffer) => lines.push(...c.toString().split("\n").filter(Boolean)));
  const runtime = await createRuntime(config, { logger: createLogger("info", { format: "json", destination: sink }) });
  server = await startServer(config, runtime);
});
afterAll(async () => {
  await server?.stop();
  await upstream?.close();
});

/** Resolves with the access-log line of the request whose id is id (the line is written when the response closes). */
async function logLineFor(id: string): Promise<Record<string, any>> {
  for (let i = 0; i < 200; i++) {
    const line = lines.find((l) => l.includes(`"id":"${id}"`));
    if (line) return JSON.parse(line) as Record<string, any>;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`no log line for ${id}:\n${lines.join("\n")}`);
}

describe("the access log", () => {
  it("one JSON line per request: method, path, status, bytes, ms, cache outcome, upstream, request id", async () => {
    const res = await fetch(`${server.url}/v2/library/alpine/blobs/${fx.blobDigest}?ns=docker.io`, { headers: { "x-request-id": "req-blob-1" } });
    expect((await res.arrayBuffer()).byteLength).toBe(fx.blob.length);
    expect(res.headers.get("x-request-id")).toBe("req-blob-1");
    const line = await logLineFor("req-blob-1");
    expect(line).toMatchObject({
      level: 30,
      msg: "request",
      service: "tug",
      req: { id: "req-blob-1", method: "GET", path: `/v2/library/alpine/blobs/${fx.blobDigest}` },
      status: 200,
      bytes: fx.blob.length,
      cache: "MISS",
      upstream: "docker.io",
      complete: true,
    });
    expect(typeof line["ms"]).toBe("number");
    expect(lines.filter((l) => l.includes("req-blob-1"))).toHaveLength(1);
  });

  it("a HEAD logs 0 bytes, a hit logs HIT; a request without an id gets a generated one, echoed in the response", async () => {
    const head = await fetch(`${server.url}/v2/library/alpine/manifests/3.20`, { method: "HEAD" });
    const id = head.headers.get("x-request-id") ?? "";
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await logLineFor(id)).toMatchObject({ req: { method: "HEAD" }, status: 200, bytes: 0 });
    const get = await fetch(`${server.url}/v2/library/alpine/manifests/3.20`, { headers: { "x-request-id": "req-hit" } });
    await get.arrayBuffer();
    expect(await logLineFor("req-hit")).toMatchObject({ status: 200, bytes: fx.manifest.length, cache: "HIT" });
  });

  it("never logs credentials, tokens or query strings; an odd request id is replaced, not logged", async () => {
    const res = await fetch(`${server.url}/v2/library/alpine/manifests/3.20?ns=docker.io&token=sekrit-query`, {
      headers: { authorization: "Bearer sekrit-bearer", "x-request-id": 'bad id "sekrit-id" {}' },
    });
    await res.arrayBuffer();
    const id = res.headers.get("x-request-id") ?? "";
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await logLineFor(id);
    const all = lines.join("\n");
    expect(all).not.toContain("sekrit");
    expect(all).not.toContain("Bearer");
  });

  it("probes and scrapes log at debug, not info", async () => {
    const res = await fetch(`${server.url}/readyz`, { headers: { "x-request-id": "probe-1" } });
    await res.arrayBuffer();
    const marker = await fetch(`${server.url}/v2/`, { headers: { "x-request-id": "after-probe" } });
    await marker.arrayBuffer();
    await logLineFor("after-probe");
    expect(lines.some((l) => l.includes("probe-1"))).toBe(false);
  });
});

describe("log formats", () => {
  const capture = (isTTY: boolean) => {
    const out = Object.assign(new PassThrough(), { isTTY });
    let text = "";
    out.on("data", (c: Buffer) => (text += c.toString()));
    return { out, text: () => text };
  };

  it("json writes one JSON object per line", () => {
    const c = capture(true);
    createLogger("info", { format: "json", destination: c.out }).info({ status: 200 }, "request");
    expect(JSON.parse(c.text())).toMatchObject({ msg: "request", status: 200, service: "tug" });
  });

  it("pretty (by flag) and auto on a terminal write readable lines; auto elsewhere writes JSON", () => {
    const pretty = capture(false);
    createLogger("info", { format: "pretty", destination: pretty.out }).info({ status: 200 }, "request");
    expect(pretty.text()).toMatch(/INFO.*request.*status.*200/);
    expect(() => JSON.parse(pretty.text())).toThrow();
    const tty = capture(true);
    createLogger("info", { format: "auto", destination: tty.out }).info("hello");
    expect(tty.text()).toMatch(/INFO.*hello/);
    expect(tty.text()).toContain("\x1b["); // colours on a terminal
    const pipe = capture(false);
    createLogger("info", { format: "auto", destination: pipe.out }).info("hello");
    expect(JSON.parse(pipe.text())).toMatchObject({ msg: "hello" });
  });

  it("redacts a stray password or authorization field", () => {
    const c = capture(false);
    createLogger("info", { format: "json", destination: c.out }).info({ upstream: { password: "p4ss" }, headers: { authorization: "Basic x" } }, "oops");
    expect(c.text()).not.toContain("p4ss");
    expect(c.text()).not.toContain("Basic x");
  });
});
