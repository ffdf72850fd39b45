// A token server for tests, in the shape distribution's `auth: token` expects
// (docker/distribution docs/spec/auth/token.md): GET /token?service=&scope=…
// with optional Basic credentials answers {token, access_token, expires_in,
// issued_at}, the token an RS256 JWT whose header carries the signing
// certificate (x5c, DER, base64) and whose claims carry iss, aud (the service,
// one string: distribution 2.8 reads aud as a string) and access. The
// certificate is self-signed by the openssl CLI; the registry trusts it
// through rootcertbundle. Policy: pull on any repository outside private/ for
// everyone, pull on private/* only for a listed user; a wrong password is 401.
import { createPrivateKey, randomUUID, sign, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { makeTempDir, removeTempDir, requireBinary, run } from "./process.js";

export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenRequestLog {
  method: string;
  /** Path plus query, as received. */
  url: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** The user whose password matched, "" for anonymous, undefined when refused. */
  user: string | undefined;
  status: number;
}

export interface TokenServerOptions {
  /** user → password. */
  users?: Record<string, string>;
  service?: string;
  issuer?: string;
  /** Token lifetime in seconds (expires_in). */
  lifetime?: number;
  /** Which repositories anonymous clients may pull; default: all but private/*. */
  isPublic?: (repository: string) => boolean;
  /** Host to listen on (default 127.0.0.1). */
  host?: string;
}

export interface RunningTokenServer {
  /** http://host:port */
  readonly url: string;
  /** The realm the registry should name: <url>/token. */
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM file with the signing certificate, for the registry's rootcertbundle. */
  readonly certPath: string;
  /** Every token request received, in order. */
  readonly requests: TokenRequestLog[];
  /** Every token issued (to check none appears where it must not). */
  readonly issued: string[];
  /** Signs a token with the given access (for seeding a registry as an admin). */
  mint(access: AccessEntry[], subject?: string): string;
  count(filter?: { user?: string; anonymous?: boolean }): number;
  close(): Promise<void>;
}

function b64url(b: Buffer | string): string {
  return Buffer.from(b).toString("base64url");
}

/** "repository:private/app:pull,push" → an access entry ("repository:host:5000/x:pull" keeps the port). */
export function parseScope(scope: string): AccessEntry | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first <= 0 || last <= first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(",").filter(Boolean) };
}

export async function startTokenServer(opts: TokenServerOptions = {}): Promise<RunningTokenServer> {
  const openssl = requireBinary("openssl");
  const dir = makeTempDir("token-server");
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  await run(openssl, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "3", "-subj", "/CN=tug-test-token-issuer"], { timeoutMs: 30_000 });
  const key: KeyObject = createPrivateKey(readFileSync(keyPath));
  const certDer = new X509Certificate(readFileSync(certPath)).raw.toString("base64");
  const service = opts.service ?? "tug-test-registry";
  const issuer = opts.issuer ?? "tug-test-issuer";
  const lifetime = opts.lifetime ?? 300;
  const users = opts.users ?? {};
  const isPublic = opts.isPublic ?? ((name: string) => !name.startsWith("private/"));
  const requests: TokenRequestLog[] = [];
  const issued: string[] = [];

  const mint = (access: AccessEntry[], subject = ""): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [certDer] };
    const claims = { iss: issuer, sub: subject, aud: service, exp: now + lifetime, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${input}.${b64url(sign("sha256", Buffer.from(input), key))}`;
    issued.push(token);
    return token;
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://token.test");
    const entry: TokenRequestLog = { method: req.method ?? "GET", url: req.url ?? "/", query: url.searchParams, headers: req.headers, user: undefined, status: 0 };
    requests.push(entry);
    const answer = (status: number, body: unknown): void => {
      entry.status = status;
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    // Like GCR, no OAuth2 POST: clients fall back to GET with Basic credentials.
    if (req.method !== "GET" || url.pathname !== "/token") return answer(req.method === "POST" ? 405 : 404, { errors: [{ code: "UNSUPPORTED", message: "GET /token only" }] });
    let user = "";
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Basic (.+)$/i.exec(auth);
      const decoded = m ? Buffer.from(m[1]!, "base64").toString("utf8") : "";
      const colon = decoded.indexOf(":");
      const name = decoded.slice(0, Math.max(colon, 0));
      if (colon <= 0 || users[name] === undefined || users[name] !== decoded.slice(colon + 1)) {
        return answer(401, { details: "incorrect username or password" });
      }
      user = name;
    }
    entry.user = user;
    if (url.searchParams.get("service") !== service) return answer(400, { details: `unknown service ${url.searchParams.get("service")}` });
    const access: AccessEntry[] = [];
    for (const scope of url.searchParams.getAll("scope").flatMap((s) => s.split(" "))) {
      const a = parseScope(scope);
      if (!a || a.type !== "repository") continue;
      // Pull only, and only what the identity may read: like Docker Hub, a
      // scope the identity lacks yields a token without it, not an error.
      if (a.actions.includes("pull") && (user !== "" || isPublic(a.name))) access.push({ type: a.type, name: a.name, actions: ["pull"] });
    }
    const token = mint(access, user);
    answer(200, { token, access_token: token, expires_in: lifetime, issued_at: new Date().toISOString() });
  });
  await new Promise<void>((resolve) => server.listen(0, opts.host ?? "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://${opts.host ?? "127.0.0.1"}:${port}`;
  return {
    url,
    realm: `${url}/token`,
    service,
    issuer,
    certPath,
    requests,
    issued,
    mint,
    count(filter = {}) {
      return requests.filter((r) => (filter.user === undefined || r.user === filter.user) && (filter.anonymous === undefined || (r.headers.authorization === undefined) === filter.anonymous)).length;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await removeTempDir(dir);
    },
  };
}
