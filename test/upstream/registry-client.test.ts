// The upstream client against scripted servers: token dance, token reuse,
// Basic auth, where credentials go, redirects.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Agent } from "undici";
import { parseConfig } from "../../src/config/index.js";
import { silentLogger } from "../../src/observability/logger.js";
import { RegistryClient, drain } from "../../src/upstream/registry-client.js";
import { TokenCache } from "../../src/upstream/token-cache.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";

let reg: FaultServer;
let auth: FaultServer;
let cdn: FaultServer;
let agent: Agent;

beforeEach(async () => {
  reg = await startFaultServer();
  auth = await startFaultServer("127.0.0.1");
  cdn = await startFaultServer("127.0.0.2");
  agent = new Agent();
});
afterEach(async () => {
  await Promise.all([reg.close(), auth.close(), cdn.close(), agent.close()]);
});

function client(upstream: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): RegistryClient {
  const config = parseConfig({ dataDir: "/tmp/x", upstreams: { "reg.test": { url: reg.url, ...upstream } } }, env);
  return new RegistryClient(config.upstreams["reg.test"]!, {
    dispatcher: agent,
    tokens: new TokenCache(),
    timeouts: { headers: 2000, body: 2000 },
    logger: silentLogger(),
  });
}

/** The registry demands a bearer token "good" and sends the realm at `realm`. */
function bearerRegistry(realm: string, path: string, body: Buffer): void {
  reg.on(path, {
    kind: "handler",
    fn: (req, res) => {
      if (req.headers.authorization !== "Bearer good") {
        res.writeHead(401, { "www-authenticate": `Bearer realm="${realm}",service="reg.test",scope="repository:team/app:pull"`, "content-type": "application/json" });
        return void res.end('{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}');
      }
      res.writeHead(200, { "content-length": String(body.length) });
      res.end(body);
    },
  });
}

function tokenEndpoint(server: FaultServer): void {
  server.on("/token", { kind: "bytes", body: Buffer.from(JSON.stringify({ token: "good", expires_in: 300 })), headers: { "content-type": "application/json" } });
}

describe("registry client", () => {
  it("answers a Bearer challenge with a token from the realm, then reuses it for later requests", async () => {
    const body = Buffer.from("hello");
    bearerRegistry(`${auth.url}/token`, "/v2/team/app/blobs/x", body);
    tokenEndpoint(auth);
    const c = client({});
    for (let i = 0; i < 4; i++) {
      const res = await c.fetch("GET", "/v2/team/app/blobs/x", { repository: "team/app" });
      expect(res.status).toBe(200);
      await drain(res.body);
    }
    expect(auth.count({ pathIncludes: "/token" })).toBe(1);
    const tokenReq = auth.requests.find((r) => r.path.startsWith("/token"))!;
    expect(tokenReq.path).toContain("service=reg.test");
    expect(tokenReq.path).toContain("scope=repository%3Ateam%2Fapp%3Apull");
    expect(tokenReq.headers.authorization).toBeUndefined(); // anonymous: no credentials configured
    // one 401 in total: later requests send the cached token up front
    expect(reg.requests.length).toBe(5);
  });

  it("sends the configured credentials to a realm on the upstream's host", async () => {
    bearerRegistry(`${auth.url}/token`, "/v2/team/app/blobs/x", Buffer.from("x"));
    tokenEndpoint(auth);
    const c = client({ username: "bot", passwordEnv: "REG_PW" }, { REG_PW: "s3cret" });
    await drain((await c.fetch("GET", "/v2/team/app/blobs/x", { repository: "team/app" })).body);
    const tokenReq = auth.requests.find((r) => r.path.startsWith("/token"))!;
    expect(tokenReq.headers.authorization).toBe("Basic " + Buffer.from("bot:s3cret").toString("base64"));
  });

  it("withholds credentials from a realm on another host unless authRealms lists it", async () => {
    bearerRegistry(`${cdn.url}/token`, "/v2/team/app/blobs/x", Buffer.from("x"));
    tokenEndpoint(cdn);
    const c = client({ username: "bot", passwordEnv: "REG_PW" }, { REG_PW: "s3cret" });
    await drain((await c.fetch("GET", "/v2/team/app/blobs/x", { repository: "team/app" })).body);
    expect(cdn.requests.find((r) => r.path.startsWith("/token"))!.headers.authorization).toBeUndefined();

    const allowed = client({ username: "bot", passwordEnv: "REG_PW", authRealms: [cdn.host.split(":")[0]] }, { REG_PW: "s3cret" });
    await drain((await allowed.fetch("GET", "/v2/team/app/blobs/x", { repository: "team/app" })).body);
    const withCreds = cdn.requests.filter((r) => r.path.startsWith("/token")).at(-1)!;
    expect(withCreds.headers.authorization).toMatch(/^Basic /);
  });

  it("answers a Basic challenge with the configured credentials", async () => {
    const expected = "Basic " + Buffer.from("bot:pw").toString("base64");
    reg.on("/v2/team/app/blobs/y", {
      kind: "handler",
      fn: (req, res) => {
        if (req.headers.authorization !== expected) {
          res.writeHead(401, { "www-authenticate": 'Basic realm="r"' });
          return void res.end();
        }
        res.writeHead(200, { "content-length": "2" });
        res.end("ok");
      },
    });
    const c = client({ username: "bot", passwordEnv: "PW" }, { PW: "pw" });
    const res = await c.fetch("GET", "/v2/team/app/blobs/y", { repository: "team/app" });
    expect(res.status).toBe(200);
    await drain(res.body);
  });

  it("follows a redirect to a CDN on another host without Authorization", async () => {
    bearerRegistry(`${auth.url}/token`, "/v2/team/app/blobs/z", Buffer.from("x"));
    tokenEndpoint(auth);
    reg.on("/v2/team/app/blobs/z", {
      kind: "handler",
      fn: (req, res) => {
        if (req.headers.authorization !== "Bearer good") {
          res.writeHead(401, { "www-authenticate": `Bearer realm="${auth.url}/token",service="reg.test"` });
          return void res.end();
        }
        res.writeHead(307, { location: `${cdn.url}/blob-data?sig=1` });
        res.end();
      },
    });
    cdn.on("/blob-data", { kind: "bytes", body: Buffer.from("cdn bytes") });
    const c = client({});
    const res = await c.fetch("GET", "/v2/team/app/blobs/z", { repository: "team/app" });
    expect(res.status).toBe(200);
    await drain(res.body);
    const seen = cdn.requests.find((r) => r.path.startsWith("/blob-data"))!;
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers.cookie).toBeUndefined();
    expect(seen.headers["proxy-authorization"]).toBeUndefined();
  });

  it("refuses a redirect to a link-local (metadata) address", async () => {
    reg.on("/v2/team/app/blobs/m", { kind: "redirect", location: "http://169.254.169.254/latest/meta-data/" });
    const c = client({});
    await expect(c.fetch("GET", "/v2/team/app/blobs/m", { repository: "team/app" })).rejects.toMatchObject({ code: "UNAVAILABLE", status: 502 });
  });

  it("does not discover auth before the first request (starts offline)", () => {
    client({});
    expect(reg.requests.length).toBe(0);
  });
});
