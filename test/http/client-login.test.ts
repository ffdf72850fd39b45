// auth.users: with users configured, everything but the probes needs a login
// (Basic, bcrypt hashes) — checked with raw HTTP and with skopeo.
import { hashSync } from "bcryptjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/index.js";
import { skopeoInspectRaw } from "../helpers/clients.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture } from "../helpers/fixtures.js";
import { startTug, type TestTug } from "../helpers/tug.js";

let upstream: FaultServer;
let tug: TestTug;
const fx = makeFixture(1024);

function basic(creds: string): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(creds).toString("base64")}` };
}

beforeAll(async () => {
  upstream = await startFaultServer();
  upstream.on("/v2/library/alpine/manifests/3.20", { kind: "bytes", body: fx.manifest, headers: { "content-type": fx.mediaType } });
  const users = {
    ci: hashSync("s3cret", 4),
    // htpasswd -nbB writes $2y$ hashes
    ops: hashSync("0ps-pass", 4).replace(/^\$2b\$/, "$2y$"),
  };
  tug = await startTug({ upstreams: { "docker.io": upstream.url }, extra: { auth: { users } } });
});
afterAll(async () => {
  await tug.stop();
  await upstream.close();
});

describe("auth.users: logging in to tug", () => {
  it("without credentials every registry endpoint is 401 with a Basic challenge, before any upstream contact", async () => {
    for (const path of ["/v2/", "/v2/library/alpine/manifests/3.20", `/v2/library/alpine/blobs/${fx.blobDigest}`, "/v2/library/alpine/tags/list", "/auth/token?scope=x", "/metrics"]) {
      const res = await fetch(tug.url + path);
      expect(res.status, path).toBe(401);
      expect(res.headers.get("www-authenticate")).toBe('Basic realm="tug"');
      if (path !== "/metrics") expect(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe("UNAUTHORIZED");
      else await res.arrayBuffer();
    }
    expect(upstream.requests.length).toBe(0);
  });

  it("a wrong password, an unknown user or a Bearer token is 401; a listed user ($2b$ or htpasswd's $2y$) gets in", async () => {
    for (const headers of [basic("ci:wrong"), basic("nobody:s3cret"), { authorization: "Bearer abc" }, basic("ci")]) {
      const res = await fetch(`${tug.url}/v2/`, { headers });
      expect(res.status).toBe(401);
      await res.arrayBuffer();
    }
    for (const creds of ["ci:s3cret", "ops:0ps-pass"]) {
      const res = await fetch(`${tug.url}/v2/library/alpine/manifests/3.20`, { headers: basic(creds) });
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(fx.manifest)).toBe(true);
    }
    // The upstream never sees the login.
    expect(upstream.requests.every((r) => r.headers.authorization === undefined)).toBe(true);
  });

  it("health probes need no login", async () => {
    const res = await fetch(`${tug.url}/healthz`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });

  it("skopeo logs in with --creds and is refused without", async () => {
    const ok = await skopeoInspectRaw(`docker://${tug.host}/library/alpine:3.20`, { creds: "ci:s3cret" });
    expect(ok.digest).toBe(fx.manifestDigest);
    await expect(skopeoInspectRaw(`docker://${tug.host}/library/alpine:3.20`)).rejects.toThrow(/401|unauthorized|authentication required/i);
    await expect(skopeoInspectRaw(`docker://${tug.host}/library/alpine:3.20`, { creds: "ci:nope" })).rejects.toThrow(/401|unauthorized|authentication required/i);
  });

  it("cannot be combined with clientAuth: one Authorization header cannot carry both", () => {
    expect(() =>
      parseConfig({ dataDir: "/tmp/x", upstreams: { "docker.io": { url: "https://registry-1.docker.io", clientAuth: true } }, auth: { users: { ci: hashSync("x", 4) } } }, {}),
    ).toThrow(/auth\.users.*clientAuth/s);
  });
});
