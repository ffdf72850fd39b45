// The client tug uses to talk to one upstream registry: the token challenge
// dance, redirects to CDNs, timeouts. It answers with the upstream's final
// response (after auth and redirects) or throws a RegistryError describing why
// the upstream could not be reached.
import type { Readable } from "node:stream";
import { request, type Dispatcher } from "undici";
import type { Logger } from "pino";
import type { UpstreamConfig } from "../config/index.js";
import { RegistryError } from "../oci/errors.js";
import { pickChallenge, repositoryScope, type Challenge } from "./challenge.js";
import { forbiddenRedirectHost, realmAllowed } from "./realm-policy.js";
import type { TokenCache, TokenResponse } from "./token-cache.js";
import type { Metrics } from "../observability/metrics.js";
import type { UpstreamGuard } from "./upstream-guard.js";

export interface UpstreamTimeouts {
  /** ms to wait for response headers */
  readonly headers: number;
  /** ms of silence allowed between body chunks */
  readonly body: number;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Readable;
  /** The URL that finally answered (after redirects). */
  readonly url: string;
}

export interface FetchOptions {
  /** The repository on the upstream, for the token scope. */
  readonly repository: string;
  readonly accept?: string;
  readonly range?: string;
  readonly signal?: AbortSignal;
}

export interface RegistryClientDeps {
  readonly dispatcher: Dispatcher;
  readonly tokens: TokenCache;
  readonly timeouts: UpstreamTimeouts;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  readonly now?: () => number;
  /** Negative cache, circuit breaker and concurrency limit for this upstream. */
  readonly guard?: UpstreamGuard;
}

const MAX_REDIRECTS = 5;
const USER_AGENT = "tug (pull-through cache)";

export function headerValue(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

/** True for failures that mean "the upstream is not answering usefully": serve stale instead. */
export function isUpstreamOutage(err: unknown): boolean {
  return err instanceof RegistryError && (err.code === "UNAVAILABLE" || err.code === "TOOMANYREQUESTS");
}

export function translateNetworkError(err: unknown, host: string): RegistryError {
  if (err instanceof RegistryError) return err;
  const e = err as { code?: string; name?: string; message?: string };
  // A DOMException (AbortSignal.timeout's reason) has a numeric code: its name is what says "TimeoutError".
  const code = typeof e.code === "string" ? e.code : (e.name ?? "");
  const detail = { upstream: host, reason: code || e.message };
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT" || code === "UND_ERR_CONNECT_TIMEOUT" || code === "ETIMEDOUT" || code === "TimeoutError") {
    return new RegistryError("UNAVAILABLE", `upstream ${host} timed out`, { detail, status: 504, cause: err });
  }
  if (code === "AbortError" || code === "UND_ERR_ABORTED") {
    return new RegistryError("UNAVAILABLE", `request to upstream ${host} was aborted`, { detail, cause: err });
  }
  return new RegistryError("UNAVAILABLE", `upstream ${host} is unreachable`, { detail, cause: err });
}

export class RegistryClient {
  readonly upstream: UpstreamConfig;
  readonly #origin: URL;
  readonly #deps: RegistryClientDeps;
  /** The upstream's last challenge: lets later requests fetch a token before the first 401. */
  #challenge: Challenge | undefined;
  #discovering: Promise<Challenge | undefined> | undefined;
  /** authChallenge() has asked the upstream once: an open upstream is not asked again (a later 401 still teaches #challenge). */
  #discovered = false;
  /** Set on a view made by withClientToken: the client's own Bearer token, sent instead of tug's identity. */
  readonly #clientToken: string | undefined;

  constructor(upstream: UpstreamConfig, deps: RegistryClientDeps, clientToken?: string) {
    this.upstream = upstream;
    this.#origin = new URL(upstream.url);
    this.#deps = deps;
    this.#clientToken = clientToken;
  }

  /**
   * A view of this client that presents a client's own token (clientAuth) to
   * this upstream and to nothing else: never to a token realm, never across a
   * redirect to another origin. It fetches no tokens; a 401 is returned as is.
   */
  withClientToken(token: string): RegistryClient {
    return new RegistryClient(this.upstream, this.#deps, token);
  }

  /** The `service` of the upstream's Bearer challenge, once one has been seen. */
  get service(): string | undefined {
    return this.#challenge?.scheme === "bearer" ? this.#challenge.params["service"] : undefined;
  }

  /**
   * The upstream's auth challenge: the last one seen, else discovered with an
   * anonymous GET /v2/ (lazily: tug starts offline, PROTOCOL.md lesson 13).
   * undefined when the upstream asks for no auth.
   */
  async authChallenge(): Promise<Challenge | undefined> {
    if (this.#challenge || this.#discovered) return this.#challenge;
    this.#discovering ??= (async () => {
      try {
        const res = await this.#send("GET", new URL("/v2/", this.#origin), { repository: "" }, undefined);
        await drain(res.body);
        if (res.status === 401) {
          const challenge = pickChallenge(res.headers["www-authenticate"]);
          if (challenge) this.#challenge = challenge;
          this.#discovered = true;
          return challenge;
        }
        if (res.status >= 200 && res.status < 300) {
          this.#discovered = true;
          return undefined;
        }
        throw upstreamStatusError(res, this.upstream.host, "tags");
      } finally {
        this.#discovering = undefined;
      }
    })();
    return this.#discovering;
  }

  /**
   * Sends method to the upstream's path, answering auth challenges and following
   * redirects. Any final status is returned (the caller decides what 404 means);
   * network failures and timeouts throw RegistryError.
   */
  async fetch(method: "GET" | "HEAD", path: string, opts: FetchOptions): Promise<UpstreamResponse> {
    const guard = this.#deps.guard;
    return guard ? guard.run(path, () => this.#fetchUnguarded(method, path, opts)) : this.#fetchUnguarded(method, path, opts);
  }

  /** A body that failed after good headers counts against the upstream's circuit breaker. */
  noteBodyFailure(err: unknown): void {
    this.#deps.guard?.bodyFailed(err);
  }

  async #fetchUnguarded(method: "GET" | "HEAD", path: string, opts: FetchOptions): Promise<UpstreamResponse> {
    if (this.#clientToken !== undefined) {
      return this.#send(method, new URL(path, this.#origin), opts, `Bearer ${this.#clientToken}`);
    }
    const scope = repositoryScope(opts.repository);
    let auth = await this.#authorization(scope, false);
    let res = await this.#send(method, new URL(path, this.#origin), opts, auth);
    if (res.status === 401) {
      const challenge = pickChallenge(res.headers["www-authenticate"]);
      await drain(res.body);
      if (challenge) {
        this.#challenge = challenge;
        const retryAuth = await this.#authorization(scope, auth !== undefined);
        if (retryAuth !== undefined && retryAuth !== auth) {
          auth = retryAuth;
          res = await this.#send(method, new URL(path, this.#origin), opts, auth);
        }
      }
    }
    return res;
  }

  /** The Authorization header for scope, from the token cache or a fresh token. */
  async #authorization(scope: string, afterChallenge: boolean): Promise<string | undefined> {
    const challenge = this.#challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      const { username, password } = this.upstream;
      if (username === undefined || password === undefined) return undefined;
      return "Basic " + Buffer.from(`${username}:${password}`).toString("base64");
    }
    const key = `${this.upstream.host}\n${scope}\ntug`;
    if (afterChallenge) this.#deps.tokens.invalidate(key);
    const token = await this.#deps.tokens.obtain(key, () => this.#fetchToken(challenge, scope));
    return token ? `Bearer ${token}` : undefined;
  }

  async #fetchToken(challenge: Challenge, scope: string): Promise<TokenResponse> {
    const realmRaw = challenge.params["realm"];
    if (!realmRaw) throw new RegistryError("UNAVAILABLE", `upstream ${this.upstream.host} sent a Bearer challenge without a realm`, { status: 502 });
    let realm: URL;
    try {
      realm = new URL(realmRaw);
    } catch {
      throw new RegistryError("UNAVAILABLE", `upstream ${this.upstream.host} sent an invalid token realm`, { status: 502 });
    }
    if (challenge.params["service"] !== undefined) realm.searchParams.set("service", challenge.params["service"]);
    realm.searchParams.set("scope", scope);
    const headers: Record<string, string> = { "user-agent": USER_AGENT };
    const { username, password } = this.upstream;
    if (username !== undefined && password !== undefined) {
      if (realmAllowed(realm, this.#origin, this.upstream.authRealms)) {
        headers["authorization"] = "Basic " + Buffer.from(`${username}:${password}`).toString("base64");
      } else {
        this.#deps.logger.warn(
          { upstream: this.upstream.host, realm: realm.host },
          "token realm is not on the upstream's domain nor in authRealms: credentials withheld, asking for an anonymous token",
        );
      }
    }
    if (forbiddenRedirectHost(realm.hostname)) {
      throw new RegistryError("UNAVAILABLE", `upstream ${this.upstream.host} named a forbidden token realm`, { status: 502 });
    }
    this.#deps.metrics?.tokenFetches.inc({ upstream: this.upstream.host });
    let res: Dispatcher.ResponseData;
    try {
      res = await request(realm, {
        method: "GET",
        headers,
        dispatcher: this.#deps.dispatcher,
        headersTimeout: this.#deps.timeouts.headers,
        bodyTimeout: this.#deps.timeouts.body,
      });
    } catch (err) {
      throw translateNetworkError(err, realm.host);
    }
    const text = await readLimited(res.body, 1 << 20);
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new RegistryError("DENIED", `upstream ${this.upstream.host} refused a token for ${scope}`, { detail: { upstream: this.upstream.host, status: res.statusCode } });
    }
    if (res.statusCode === 429) {
      throw new RegistryError("TOOMANYREQUESTS", `upstream ${this.upstream.host} token endpoint is rate limiting`, {
        headers: retryAfterHeader(res.headers["retry-after"]),
      });
    }
    if (res.statusCode !== 200) {
      throw new RegistryError("UNAVAILABLE", `upstream ${this.upstream.host} token endpoint answered ${res.statusCode}`, { status: 502, detail: { status: res.statusCode } });
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      body = JSON.parse(text.toString("utf8")) as typeof body;
    } catch {
      throw new RegistryError("UNAVAILABLE", `upstream ${this.upstream.host} token endpoint sent invalid JSON`, { status: 502 });
    }
    const token = typeof body.token === "string" ? body.token : typeof body.access_token === "string" ? body.access_token : undefined;
    if (!token) throw new RegistryError("UNAVAILABLE", `upstream ${this.upstream.host} token endpoint sent no token`, { status: 502 });
    const now = (this.#deps.now ?? Date.now)();
    const expiresIn = typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 60;
    const issued = typeof body.issued_at === "string" ? Date.parse(body.issued_at) : NaN;
    // A realm's clock may be off: never trust an issued_at from the future or far past.
    const issuedAt = Number.isFinite(issued) && Math.abs(issued - now) < 5 * 60_000 ? issued : now;
    return { token, expiresIn, issuedAt };
  }

  async #send(method: "GET" | "HEAD", url: URL, opts: FetchOptions, auth: string | undefined): Promise<UpstreamResponse> {
    let target = url;
    for (let hop = 0; ; hop++) {
      const headers: Record<string, string> = { "user-agent": USER_AGENT };
      if (opts.accept) headers["accept"] = opts.accept;
      if (opts.range) headers["range"] = opts.range;
      // Authorization goes to the upstream's own origin only, never to a CDN or
      // bucket we were redirected to (PROTOCOL.md lesson 18).
      if (auth !== undefined && target.origin === this.#origin.origin) headers["authorization"] = auth;
      let res: Dispatcher.ResponseData;
      const metrics = this.#deps.metrics;
      const host = this.upstream.host;
      const started = process.hrtime.bigint();
      try {
        res = await request(target, {
          method,
          headers,
          dispatcher: this.#deps.dispatcher,
          headersTimeout: this.#deps.timeouts.headers,
          bodyTimeout: this.#deps.timeouts.body,
          signal: opts.signal,
        });
      } catch (err) {
        // An aborted signal's reason says why (e.g. a TimeoutError from resilience.manifestTimeout).
        const e = translateNetworkError(opts.signal?.aborted === true && opts.signal.reason !== undefined ? opts.signal.reason : err, host);
        metrics?.upstreamRequests.inc({ upstream: host, method, status: "error" });
        metrics?.upstreamErrors.inc({ upstream: host, reason: e.status === 504 ? "timeout" : "unreachable" });
        throw e;
      }
      const status = res.statusCode;
      if (metrics) {
        metrics.upstreamDuration.observe({ upstream: host }, Number(process.hrtime.bigint() - started) / 1e9);
        metrics.upstreamRequests.inc({ upstream: host, method, status: String(status) });
        if (status >= 500 || status === 429) metrics.upstreamErrors.inc({ upstream: host, reason: status === 429 ? "status_429" : "status_5xx" });
      }
      if (status >= 300 && status < 400 && status !== 304 && res.headers["location"] !== undefined) {
        await drain(res.body);
        if (hop >= MAX_REDIRECTS) throw new RegistryError("UNAVAILABLE", `upstream ${this.upstream.host} redirected too many times`, { status: 502 });
        const location = headerValue(res.headers["location"])!;
        let next: URL;
        try {
          next = new URL(location, target);
        } catch {
          throw new RegistryError("UNAVAILABLE", `upstream ${this.upstream.host} sent an invalid redirect`, { status: 502 });
        }
        if ((next.protocol !== "https:" && next.protocol !== "http:") || forbiddenRedirectHost(next.hostname)) {
          this.#deps.logger.warn({ upstream: this.upstream.host, target: next.host }, "refused a redirect to a forbidden address");
          throw new RegistryError("UNAVAILABLE", `upstream ${this.upstream.host} redirected to a forbidden address`, { status: 502 });
        }
        target = next;
        continue;
      }
      return { status, headers: res.headers, body: res.body, url: target.href };
    }
  }
}

export function retryAfterHeader(v: string | string[] | undefined): Record<string, string> {
  const value = headerValue(v);
  return { "Retry-After": value && /^\d+$|^[A-Z][a-z]{2}, /.test(value) ? value : "10" };
}

/** Maps an upstream's non-success answer to the error tug sends its client. */
export function upstreamStatusError(res: UpstreamResponse, host: string, what: "manifest" | "blob" | "tags" | "referrers"): RegistryError {
  const detail = { upstream: host, status: res.status };
  if (res.status === 404) {
    const code = what === "manifest" ? "MANIFEST_UNKNOWN" : what === "blob" ? "BLOB_UNKNOWN" : "NAME_UNKNOWN";
    return new RegistryError(code, `${what} unknown to upstream ${host}`, { detail });
  }
  if (res.status === 429) {
    return new RegistryError("TOOMANYREQUESTS", `upstream ${host} is rate limiting`, { detail, headers: retryAfterHeader(res.headers["retry-after"]) });
  }
  if (res.status === 401 || res.status === 403) {
    return new RegistryError("DENIED", `upstream ${host} denied access (the repository may not exist or may need credentials)`, { detail, status: 403 });
  }
  if (res.status === 503) return new RegistryError("UNAVAILABLE", `upstream ${host} is unavailable`, { detail });
  if (res.status === 504) return new RegistryError("UNAVAILABLE", `upstream ${host} timed out`, { detail, status: 504 });
  return new RegistryError("UNAVAILABLE", `upstream ${host} answered ${res.status}`, { status: 502, detail });
}

export async function drain(body: Readable): Promise<void> {
  try {
    body.resume();
    await new Promise<void>((resolve) => {
      if (body.readableEnded || body.destroyed) return resolve();
      body.once("end", resolve);
      body.once("error", () => resolve());
      body.once("close", resolve);
    });
  } catch {
    // nothing to do: the connection is discarded
  }
}

/** Reads a whole body up to limit bytes; more is an error (a manifest cap, CVE-2017-11468). */
export async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      body.destroy();
      throw new RegistryError("SIZE_INVALID", `body exceeds ${limit} bytes`, { status: 502, detail: { limit } });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
