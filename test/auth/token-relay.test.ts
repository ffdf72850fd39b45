// tug's token endpoint against scripted upstreams and realms: which realm gets
// the request, with which scope, with or without the client's credentials.
import { Writable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/observability/logger.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { startTug, type TestTug } from "../helpers/tug.js";

let hub: FaultServer; // "docker.io", its realm on the same host
let reg: FaultServer; // "registry.test", its realm on another address
let realm: FaultServer; // 127.0.0.1: hub's realm
let foreign: FaultServer; // 127.0.0.2: reg's realm
let plain: FaultServer; // "plain.test", no clientAuth
let tug: TestTug;
let allowed: TestTug;
const logs: string[] = [];

function basic(creds: string): string {
  return `Basic ${Buffer.from(creds).toString("base64")}`;
}

/** A realm that answers a token naming who asked, with issued_at (reusable) unless told otherwise. */
function tokenEndpoint(server: FaultServer, opts: { issuedAt?: boolean } = {}): void {
  server.on("/token", {
    kind: "handler",
    fn: (req, res) => {
      if (req.method === "POST") {
        let body = "";
        req.on("data", (c: Buffer) => (body += c.toString()));
        req.on("end", () => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ access_token: `oauth:${new URLSearchParams(body).get("username")}`, echo: body }));
        });
        return;
      }
      const auth = req.headers.authorization;
      if (auth === basic("alice:wrong")) {
        res.writeHead(401, { "content-type": "application/json" });
        return void res.end('{"details":"incorrect username or password"}');
      }
      const who = auth ? Buffer.from(auth.slice(6), "base64").toString().split(":")[0] : "anonymous";
      res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
      res.end(JSON.stringify({ token: `token-for-${who}`, expires_in: 300, ...(opts.issuedAt === false ? {} : { issued_at: new Date().toISOString() }), extra: "kept" }));
    },
  });
}

beforeAll(async () => {
  [hub, reg, realm, plain] = await Promise.all([startFaultServer(), startFaultServer(), startFaultServer(), startFaultServer()]);
  foreign = await startFaultServer("127.0.0.2");
  hub.on("/v2/", { kind: "status", status: 401, headers: { "www-authenticate": `Bearer realm="${realm.url}/token",service="hub-service"` } });
  reg.on("/v2/", { kind: "status", status: 401, headers: { "www-authenticate": `Bearer realm="${foreign.url}/token",service="reg-service"` } });
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const upstreams = {
    "docker.io": { url: hub.url, clientAuth: true },
    "registry.test": { url: reg.url, clientAuth: true },
    "plain.test": { url: plain.url },
  };
  tug = await startTug({ upstreams, logger: createLogger("debug", sink) });
  allowed = await startTug({ upstreams: { "registry.test": { url: reg.url, clientAuth: true, authRealms: ["127.0.0.2"] } } });
});

afterAll(async () => {
  await Promise.all([tug?.stop(), allowed?.stop()]);
  await Promise.all([hub, reg, realm, foreign, plain].map((s) => s?.close()));
});

beforeEach(() => {
  tokenEndpoint(realm);
  tokenEndpoint(foreign);
});

async function ask(t: TestTug, query: string, init: RequestInit = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(`${t.url}/auth/token?${query}`, init);
  return { status: res.status, text: await res.text(), headers: res.headers };
}

function lastToken(server: FaultServer): URL {
  const r = server.requests.filter((q) => q.path.startsWith("/token")).at(-1);
  if (!r) throw new Error("no token request");
  return new URL(r.path, server.url);
}

describe("tug's token endpoint (clientAuth relay)", () => {
  it("a login (no scope, as docker login asks) goes to the upstream named by the service, credentials and account included", async () => {
    const r = await ask(tug, "service=reg-service&account=alice", { headers: { authorization: basic("alice:pw") } });
    expect(r.status).toBe(200);
    const sent = lastToken(foreign);
    expect(sent.searchParams.get("service")).toBe("reg-service");
    expect(sent.searchParams.getAll("scope")).toEqual([]);
    // reg's realm is off its domain: the credentials stayed with tug
    expect(foreign.requests.at(-1)!.headers.authorization).toBeUndefined();
    const hubLogin = await ask(tug, "service=hub-service&account=alice", { headers: { authorization: basic("alice:pw") } });
    expect(JSON.parse(hubLogin.text).token).toBe("token-for-alice");
    expect(lastToken(realm).searchParams.get("account")).toBe("alice");
  });

  it("forwards to the upstream's realm with its service and the scope rewritten to the upstream's name; the answer comes back unchanged", async () => {
    const r = await ask(tug, "service=whatever&scope=repository:alpine:pull,push&scope=repository:docker.io/team/app:pull&account=alice", { headers: { authorization: basic("alice:pw") } });
    expect(r.status).toBe(200);
    expect(r.headers.get("cache-control")).toBe("no-store");
    expect(r.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(JSON.parse(r.text)).toMatchObject({ token: "token-for-alice", extra: "kept" });
    const sent = lastToken(realm);
    expect(sent.searchParams.get("service")).toBe("hub-service");
    // one-segment Hub names are library/…; a host prefix is stripped; push is never asked for
    expect(sent.searchParams.getAll("scope")).toEqual(["repository:library/alpine:pull", "repository:team/app:pull"]);
    expect(sent.searchParams.get("account")).toBe("alice");
    expect(realm.requests.at(-1)!.headers.authorization).toBe(basic("alice:pw"));
  });

  it("routes a scope by the ns in its realm (containerd) and by a prefix naming another upstream", async () => {
    await ask(allowed, "scope=repository:owner/app:pull&ns=registry.test");
    expect(lastToken(foreign).searchParams.getAll("scope")).toEqual(["repository:owner/app:pull"]);
    await ask(tug, "scope=repository:registry.test/owner/tool:pull");
    expect(lastToken(foreign).searchParams.getAll("scope")).toEqual(["repository:owner/tool:pull"]);
    expect(lastToken(foreign).searchParams.get("service")).toBe("reg-service");
  });

  it("withholds the client's credentials from a realm off the upstream's domain (logged), sends them where authRealms allows", async () => {
    const before = foreign.requests.length;
    const r = await ask(tug, "scope=repository:registry.test/private/app:pull", { headers: { authorization: basic("bob:pw") } });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).token).toBe("token-for-anonymous");
    expect(foreign.requests.slice(before).every((q) => q.headers.authorization === undefined)).toBe(true);
    expect(logs.join("")).toContain("the client's credentials were withheld");
    expect(logs.join("")).not.toContain(Buffer.from("bob:pw").toString("base64"));
    const ok = await ask(allowed, "scope=repository:private/app:pull", { headers: { authorization: basic("bob:pw") } });
    expect(JSON.parse(ok.text).token).toBe("token-for-bob");
  });

  it("an upstream without clientAuth gets no token request at all: a token that means nothing upstream", async () => {
    const before = plain.requests.length + realm.requests.length + foreign.requests.length;
    const r = await ask(tug, "scope=repository:plain.test/x/y:pull", { headers: { authorization: basic("alice:pw") } });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.text).token).toBe("tug-no-upstream-token");
    expect(plain.requests.length + realm.requests.length + foreign.requests.length).toBe(before);
  });

  it("reuses an upstream token per (upstream, scope, identity) while it is valid; never across identities", async () => {
    const count = (): number => realm.requests.filter((q) => q.path.includes("reuse%2Fme")).length;
    for (let i = 0; i < 3; i++) await ask(tug, "scope=repository:reuse/me:pull");
    expect(count()).toBe(1);
    for (let i = 0; i < 3; i++) await ask(tug, "scope=repository:reuse/me:pull", { headers: { authorization: basic("carol:pw") } });
    expect(count()).toBe(2);
    const dave = await ask(tug, "scope=repository:reuse/me:pull", { headers: { authorization: basic("dave:pw") } });
    expect(JSON.parse(dave.text).token).toBe("token-for-dave");
    expect(count()).toBe(3);
    // without issued_at a reused answer would mislead the client about its expiry: not reused
    tokenEndpoint(realm, { issuedAt: false });
    await ask(tug, "scope=repository:reuse/me2:pull");
    await ask(tug, "scope=repository:reuse/me2:pull");
    expect(realm.requests.filter((q) => q.path.includes("reuse%2Fme2")).length).toBe(2);
  });

  it("passes the realm's 401 for a wrong password through", async () => {
    const r = await ask(tug, "scope=repository:private/app:pull", { headers: { authorization: basic("alice:wrong") } });
    expect(r.status).toBe(401);
    expect(JSON.parse(r.text)).toEqual({ details: "incorrect username or password" });
  });

  it("relays an OAuth2 POST with the form rewritten; refuses it for a realm that may not have credentials", async () => {
    const form = new URLSearchParams({ grant_type: "password", username: "alice", password: "pw", service: "x", scope: "repository:alpine:pull", client_id: "containerd-client" });
    const res = await fetch(`${tug.url}/auth/token`, { method: "POST", body: form, headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; echo: string };
    expect(body.access_token).toBe("oauth:alice");
    const echoed = new URLSearchParams(body.echo);
    expect(echoed.get("scope")).toBe("repository:library/alpine:pull");
    expect(echoed.get("service")).toBe("hub-service");
    expect(echoed.get("password")).toBe("pw");
    const before = foreign.requests.length;
    const refused = await fetch(`${tug.url}/auth/token`, { method: "POST", body: new URLSearchParams({ grant_type: "password", username: "a", password: "b", scope: "repository:registry.test/x:pull" }) });
    expect(refused.status).toBe(403);
    await refused.arrayBuffer();
    expect(foreign.requests.length).toBe(before);
  });

  it("never dials a realm at a link-local address, and never hands a realm's redirect to the client", async () => {
    const meta = await startFaultServer();
    meta.on("/v2/", { kind: "status", status: 401, headers: { "www-authenticate": 'Bearer realm="http://169.254.169.254/token",service="s"' } });
    const redirecting = await startFaultServer();
    redirecting.on("/v2/", { kind: "status", status: 401, headers: { "www-authenticate": `Bearer realm="${redirecting.url}/token",service="s"` } });
    redirecting.on("/token", { kind: "redirect", location: "http://127.0.0.2:1/steal" });
    const t = await startTug({ upstreams: { "meta.test": { url: meta.url, clientAuth: true }, "redir.test": { url: redirecting.url, clientAuth: true } } });
    try {
      const started = Date.now();
      const r = await ask(t, "scope=repository:meta.test/x:pull", { headers: { authorization: basic("alice:pw") } });
      expect(r.status).toBe(502);
      expect(r.text).toContain("forbidden token realm");
      expect(Date.now() - started).toBeLessThan(1500);
      const redir = await ask(t, "scope=repository:redir.test/x:pull");
      expect(redir.status).toBe(502);
      expect(redir.headers.get("location")).toBeNull();
    } finally {
      await t.stop();
      await meta.close();
      await redirecting.close();
    }
  });
});
