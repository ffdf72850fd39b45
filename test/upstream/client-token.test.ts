// RegistryClient's client-token view (clientAuth) and challenge discovery:
// a client's token goes to the upstream's origin only, and the client's 401 is
// its own to answer (tug fetches no token on its behalf).
import { Agent } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
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
  [reg, auth] = await Promise.all([startFaultServer(), startFaultServer()]);
  cdn = await startFaultServer("127.0.0.2");
  agent = new Agent();
});
afterEach(async () => {
  await Promise.all([reg.close(), auth.close(), cdn.close(), agent.close()]);
});

function client(): RegistryClient {
  const config = parseConfig({ dataDir: "/tmp/x", upstreams: { "reg.test": { url: reg.url, clientAuth: true } } }, {});
  return new RegistryClient(config.upstreams["reg.test"]!, { dispatcher: agent, tokens: new TokenCache(), timeouts: { headers: 2000, body: 2000 }, logger: silentLogger() });
}

describe("a client's own token", () => {
  it("is sent to the upstream as is, never to the realm; a 401 comes back without any token fetch", async () => {
    reg.on("/v2/team/app/blobs/a", {
      kind: "handler",
      fn: (req, res) => {
        if (req.headers.authorization === "Bearer good") {
          res.writeHead(307, { location: `${cdn.url}/data` });
          return void res.end();
        }
        res.writeHead(401, { "www-authenticate": `Bearer realm="${auth.url}/token",service="s"` });
        res.end();
      },
    });
    cdn.on("/data", { kind: "bytes", body: Buffer.from("bytes") });
    const base = client();
    const ok = await base.withClientToken("good").fetch("GET", "/v2/team/app/blobs/a", { repository: "team/app" });
    expect(ok.status).toBe(200);
    await drain(ok.body);
    expect(reg.requests.at(-1)!.headers.authorization).toBe("Bearer good");
    expect(cdn.requests[0]!.headers.authorization).toBeUndefined();
    const refused = await base.withClientToken("bad").fetch("GET", "/v2/team/app/blobs/a", { repository: "team/app" });
    expect(refused.status).toBe(401);
    await drain(refused.body);
    expect(auth.requests.length).toBe(0);
    expect(reg.requests.length).toBe(2);
  });
});

describe("authChallenge", () => {
  it("discovers the upstream's challenge with one anonymous GET /v2/ and remembers it", async () => {
    reg.on("/v2/", { kind: "status", status: 401, headers: { "www-authenticate": `Bearer realm="${auth.url}/token",service="reg-svc"` } });
    const c = client();
    expect(c.service).toBeUndefined();
    const [a, b] = await Promise.all([c.authChallenge(), c.authChallenge()]);
    expect(a).toEqual({ scheme: "bearer", params: { realm: `${auth.url}/token`, service: "reg-svc" } });
    expect(b).toBe(a);
    await c.authChallenge();
    expect(c.service).toBe("reg-svc");
    expect(reg.requests.length).toBe(1);
    expect(reg.requests[0]!.headers.authorization).toBeUndefined();
  });

  it("an open upstream is asked once, then not again", async () => {
    const c = client();
    expect(await c.authChallenge()).toBeUndefined();
    expect(await c.authChallenge()).toBeUndefined();
    expect(reg.requests.length).toBe(1);
  });
});
