// tug's own token endpoint (the realm of the challenges tug sends for
// clientAuth upstreams). A client that can reach only tug asks it for a token
// the way it would ask a registry's realm; tug works out which upstream the
// scope's repository routes to (exactly as the /v2 paths route: ?ns=, a host
// prefix, the default upstream), rewrites the scope to that upstream's
// repository name (pull only: a cache takes no pushes), and forwards the
// request — the client's Basic credentials or OAuth2 form included, or
// anonymously — to that upstream's real realm, returning the upstream's
// answer unchanged. The client's credentials go to that realm only, and only
// when the realm is on the upstream's registrable domain or in its authRealms
// (CVE-2026-33540); they are never logged or kept (the cache below keys
// answers by a hash of them).
import { createHash } from "node:crypto";
import type { Dispatcher } from "undici";
import { request } from "undici";
import type { Logger } from "pino";
import { LRUCache } from "lru-cache";
import type { UpstreamConfig } from "../config/index.js";
import { RegistryError } from "../oci/errors.js";
import { forbiddenRedirectHost, realmAllowed } from "../upstream/realm-policy.js";
import { readLimited, translateNetworkError, type RegistryClient, type UpstreamTimeouts } from "../upstream/registry-client.js";
import { resolveRoute, type UpstreamTable } from "../upstream/routing.js";
import { tokenExpiry } from "../upstream/token-cache.js";
import { NO_UPSTREAM_TOKEN } from "./client-access.js";

/** The path of tug's token endpoint. */
export const TOKEN_PATH = "/auth/token";

const USER_AGENT = "tug (pull-through cache)";
const MAX_TOKEN_BODY = 1 << 20;

export interface TokenRelayDeps {
  readonly upstreams: UpstreamTable;
  /** The upstream's client (tug's identity), for its challenge. */
  readonly clientFor: (upstream: UpstreamConfig) => RegistryClient;
  readonly dispatcher: Dispatcher;
  readonly timeouts: UpstreamTimeouts;
  readonly logger: Logger;
  readonly now: () => number;
}

export interface RelayRequest {
  readonly method: "GET" | "POST";
  /** The query of the request to tug's endpoint (service, scope, account, ns, …). */
  readonly query: URLSearchParams;
  readonly authorization: string | undefined;
  /** POST: the OAuth2 form (grant_type, username, password or refresh_token, service, scope, client_id). */
  readonly form?: URLSearchParams;
}

export interface RelayAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: Buffer;
}

interface CachedAnswer {
  readonly body: Buffer;
  readonly contentType: string;
  readonly expiresAt: number;
}

export class TokenRelay {
  readonly #d: TokenRelayDeps;
  /**
   * Upstream tokens per (upstream, scope, identity): identity is "anonymous"
   * or a hash of the client's Authorization. Reused only when the answer
   * carries issued_at, so a client computes the same expiry from a reused
   * answer as from a fresh one.
   */
  readonly #answers = new LRUCache<string, CachedAnswer>({ max: 10_000 });

  constructor(deps: TokenRelayDeps) {
    this.#d = deps;
  }

  async handle(req: RelayRequest): Promise<RelayAnswer> {
    const ns = req.query.get("ns") ?? undefined;
    const rawScopes = req.method === "POST" ? (req.form?.get("scope") ?? "").split(" ") : req.query.getAll("scope").flatMap((s) => s.split(" "));
    const service = (req.method === "POST" ? req.form?.get("service") : req.query.get("service")) ?? undefined;
    const { upstream, scopes } = await this.#target(rawScopes.filter((s) => s !== ""), ns, service);
    if (!upstream.clientAuth) return noUpstreamToken(this.#d.now());
    const client = this.#d.clientFor(upstream);
    const challenge = await client.authChallenge();
    if (challenge?.scheme !== "bearer") {
      // No token auth upstream (none, or Basic): nothing to relay; tug's own identity serves.
      if (req.authorization !== undefined || req.form?.has("password")) {
        this.#d.logger.warn({ upstream: upstream.host }, "clientAuth needs an upstream with Bearer token auth: client credentials ignored");
      }
      return noUpstreamToken(this.#d.now());
    }
    const realm = parseRealm(challenge.params["realm"], upstream.host);
    const upstreamService = challenge.params["service"];
    const credentialsAllowed = realmAllowed(realm, new URL(upstream.url), upstream.authRealms);
    if (req.method === "POST") return this.#post(req, upstream, realm, upstreamService, scopes, credentialsAllowed);

    const url = new URL(realm);
    if (upstreamService !== undefined) url.searchParams.set("service", upstreamService);
    for (const s of scopes) url.searchParams.append("scope", s);
    const headers: Record<string, string> = { "user-agent": USER_AGENT };
    let identity = "anonymous";
    if (req.authorization !== undefined) {
      if (credentialsAllowed) {
        headers["authorization"] = req.authorization;
        identity = `client:${createHash("sha256").update(req.authorization).digest("hex")}`;
        const account = req.query.get("account");
        if (account !== null) url.searchParams.set("account", account);
      } else {
        this.#d.logger.warn(
          { upstream: upstream.host, realm: realm.host },
          "token realm is not on the upstream's domain nor in authRealms: the client's credentials were withheld",
        );
      }
    }
    for (const name of ["client_id", "offline_token"]) {
      const v = req.query.get(name);
      if (v !== null) url.searchParams.set(name, v);
    }
    const key = `${upstream.host}\n${[...scopes].sort().join(" ")}\n${identity}`;
    const cached = this.#answers.get(key);
    if (cached && cached.expiresAt > this.#d.now()) return { status: 200, contentType: cached.contentType, body: cached.body };
    const answer = await this.#send(url, { method: "GET", headers }, upstream.host);
    if (answer.status === 200 && !url.searchParams.has("offline_token")) {
      const expiresAt = reusableUntil(answer.body, this.#d.now());
      if (expiresAt !== undefined) this.#answers.set(key, { body: answer.body, contentType: answer.contentType, expiresAt });
    }
    return answer;
  }

  /** OAuth2 (containerd and Docker try it first with credentials): the form, rewritten, to the realm. */
  async #post(req: RelayRequest, upstream: UpstreamConfig, realm: URL, service: string | undefined, scopes: string[], credentialsAllowed: boolean): Promise<RelayAnswer> {
    const form = new URLSearchParams();
    const incoming = req.form ?? new URLSearchParams();
    const secret = incoming.has("password") || incoming.has("refresh_token") || req.authorization !== undefined;
    if (secret && !credentialsAllowed) {
      this.#d.logger.warn({ upstream: upstream.host, realm: realm.host }, "token realm is not on the upstream's domain nor in authRealms: the client's credentials were not sent");
      throw new RegistryError("DENIED", `the token realm of upstream ${upstream.host} may not receive credentials (see authRealms)`);
    }
    for (const name of ["grant_type", "client_id", "access_type", "username", "password", "refresh_token"]) {
      const v = incoming.get(name);
      if (v !== null) form.set(name, v);
    }
    if (service !== undefined) form.set("service", service);
    if (scopes.length > 0) form.set("scope", scopes.join(" "));
    const headers: Record<string, string> = { "user-agent": USER_AGENT, "content-type": "application/x-www-form-urlencoded" };
    if (req.authorization !== undefined) headers["authorization"] = req.authorization;
    return this.#send(realm, { method: "POST", headers, body: form.toString() }, upstream.host);
  }

  /**
   * The upstream and the upstream-side scopes for a token request's scopes.
   * Every scope must name a repository that routes to one upstream; scopes of
   * other upstreams are dropped (their tokens would be useless there).
   */
  async #target(rawScopes: string[], ns: string | undefined, service: string | undefined): Promise<{ upstream: UpstreamConfig; scopes: string[] }> {
    let upstream: UpstreamConfig | undefined;
    const scopes: string[] = [];
    for (const raw of rawScopes) {
      const first = raw.indexOf(":");
      const last = raw.lastIndexOf(":");
      if (first <= 0 || last <= first || raw.slice(0, first) !== "repository") continue;
      const actions = raw.slice(last + 1).split(",");
      if (!actions.includes("pull") && !actions.includes("*")) continue;
      const route = resolveRoute(raw.slice(first + 1, last), ns, this.#d.upstreams);
      upstream ??= route.upstream;
      if (route.upstream !== upstream) continue;
      const scope = `repository:${route.repository}:pull`;
      if (!scopes.includes(scope)) scopes.push(scope);
    }
    upstream ??= await this.#byNameOrService(ns, service);
    if (!upstream) throw new RegistryError("NAME_UNKNOWN", "the token request names no configured upstream", { detail: { ns: ns?.slice(0, 255) } });
    return { upstream, scopes };
  }

  /** A token request without a repository scope (a login): ns, else the service, else the default. */
  async #byNameOrService(ns: string | undefined, service: string | undefined): Promise<UpstreamConfig | undefined> {
    const table = this.#d.upstreams;
    if (ns) return table.lookup(ns);
    if (service !== undefined) {
      const byHost = table.all().find((u) => u.host === service);
      if (byHost) return byHost;
      for (const u of table.all().filter((x) => x.clientAuth)) {
        const client = this.#d.clientFor(u);
        // An upstream's service is known from its challenge: ask for it once if it has not been seen.
        if (client.service === undefined) await client.authChallenge().catch(() => undefined);
        if (client.service === service) return u;
      }
    }
    if (table.default?.clientAuth) return table.default;
    return table.all().find((u) => u.clientAuth) ?? table.default;
  }

  async #send(url: URL, init: { method: "GET" | "POST"; headers: Record<string, string>; body?: string }, host: string): Promise<RelayAnswer> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method: init.method,
        headers: init.headers,
        ...(init.body !== undefined ? { body: init.body } : {}),
        dispatcher: this.#d.dispatcher,
        headersTimeout: this.#d.timeouts.headers,
        bodyTimeout: this.#d.timeouts.body,
      });
    } catch (err) {
      throw translateNetworkError(err, host);
    }
    const body = await readLimited(res.body, MAX_TOKEN_BODY);
    // A realm's redirect is not followed, nor handed on: the client would take its credentials wherever it points.
    if (res.statusCode >= 300 && res.statusCode < 400) {
      throw new RegistryError("UNAVAILABLE", `the token realm of upstream ${host} answered ${res.statusCode}`, { status: 502, detail: { upstream: host, status: res.statusCode } });
    }
    const ct = res.headers["content-type"];
    return { status: res.statusCode, contentType: (Array.isArray(ct) ? ct[0] : ct) ?? "application/json", body };
  }
}

function parseRealm(raw: string | undefined, host: string): URL {
  let realm: URL;
  try {
    realm = new URL(raw ?? "");
  } catch {
    throw new RegistryError("UNAVAILABLE", `upstream ${host} sent an invalid token realm`, { status: 502 });
  }
  if ((realm.protocol !== "https:" && realm.protocol !== "http:") || forbiddenRedirectHost(realm.hostname)) {
    throw new RegistryError("UNAVAILABLE", `upstream ${host} named a forbidden token realm`, { status: 502 });
  }
  return realm;
}

/** When a token answer may be handed out again: it must say when it was issued. */
function reusableUntil(body: Buffer, now: number): number | undefined {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    if (typeof parsed.token !== "string" && typeof parsed.access_token !== "string") return undefined;
    if (typeof parsed.expires_in !== "number" || typeof parsed.issued_at !== "string") return undefined;
    const issuedAt = Date.parse(parsed.issued_at);
    if (!Number.isFinite(issuedAt) || Math.abs(issuedAt - now) > 5 * 60_000) return undefined;
    return tokenExpiry({ token: "", expiresIn: parsed.expires_in, issuedAt });
  } catch {
    return undefined;
  }
}

function noUpstreamToken(now: number): RelayAnswer {
  const body = { token: NO_UPSTREAM_TOKEN, access_token: NO_UPSTREAM_TOKEN, expires_in: 3600, issued_at: new Date(now).toISOString() };
  return { status: 200, contentType: "application/json", body: Buffer.from(JSON.stringify(body)) };
}
