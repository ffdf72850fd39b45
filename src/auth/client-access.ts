// The client-access gate: decides, for every manifest, blob, tags/list and
// referrers request, whether tug answers it as itself (its own upstream
// identity, content shared with everyone) or as the client (clientAuth: the
// client's own upstream token), and never serves private content to a client
// the upstream has not just confirmed (DESIGN.md "Auth", PROTOCOL.md lesson 15).
//
// The rules, for content addressed by digest d and requested through route R
// (upstream, repository) by a client holding token t (or none):
//
// 1. d carries no private mark → public: served from cache to anyone.
// 2. d is marked private (fetched with some client's token) → served only if
//    - t was confirmed for R within 60 s and d is marked with R, or
//    - a HEAD of d in R with t answers 200 (confirms t for R, marks d with R), or
//    - a HEAD of d in R with tug's own identity answers 200: d is readable
//      without credentials through R, so its bytes are public; the mark goes.
//    otherwise 401 with tug's challenge (clientAuth upstreams) or the
//    upstream's refusal / 404.
// 3. A request tug's own identity is refused for (upstream 401/403) on a
//    clientAuth upstream goes upstream with t instead; without t it gets 401
//    and tug's challenge. Before anything is fetched with t, t is confirmed
//    with a HEAD of that very object and d is marked private to R: the mark is
//    on disk before the first byte is, so no concurrent request (which would
//    follow the same fill) and no later one (after a restart) sees it public.
// 4. Tags of a private repository are never kept in the shared tag store: a
//    private tag is resolved with a HEAD carrying t (remembered per repository
//    like confirmations) and served by digest under rule 2. Private tag lists
//    are kept apart from public ones and served only to a confirmed t.
//
// Every plain (tug-identity) answer for a digest is checked against the marks
// once more after the pull-through service returns: a private fetch may have
// started between the first check and the answer (rule 2 then applies).
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { LRUCache } from "lru-cache";
import type { BlobStore } from "../cache/blob-store.js";
import type { ManifestStore } from "../cache/manifest-store.js";
import type { BlobResult, CacheStatus, ManifestResult, PullThrough } from "../cache/pull-through.js";
import type { TagListResult, TagLists } from "../cache/tag-lists.js";
import { tryParseDigest, type Digest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { MANIFEST_ACCEPT, OCI_INDEX } from "../oci/media-types.js";
import type { Reference } from "../oci/reference.js";
import { drain, headerValue, isUpstreamOutage, upstreamStatusError, type RegistryClient, type UpstreamResponse } from "../upstream/registry-client.js";
import type { Route, UpstreamTable } from "../upstream/routing.js";
import type { UpstreamConfig } from "../config/index.js";
import { routeKey, type PrivateIndex, type RouteKey } from "./private-index.js";

/** Who is asking, as far as upstream access goes. */
export interface Requester {
  /** The client's Bearer token, when it sent one. Used only on clientAuth upstreams. */
  readonly token: string | undefined;
  /** tug's token endpoint as this client reaches it (with ?ns= when the request had one). */
  readonly realm: string;
  /** The repository as the client named it, for the challenge's scope. */
  readonly clientName: string;
}

export interface ClientAccessDeps {
  readonly pullThrough: PullThrough;
  readonly clientFor: (route: Route) => RegistryClient;
  readonly upstreams: UpstreamTable;
  readonly index: PrivateIndex;
  readonly tagLists: TagLists;
  readonly blobs: BlobStore;
  readonly manifests: ManifestStore;
  readonly now: () => number;
  readonly logger: Logger;
  readonly options: { readonly tagTTL: number; readonly staleIfError: number };
}

type Kind = "manifest" | "blob";

interface PrivateTagRecord {
  readonly digest: Digest;
  readonly fetchedAt: number;
}

/** The token tug's endpoint hands out where no upstream token is needed; it means nothing upstream. */
export const NO_UPSTREAM_TOKEN = "tug-no-upstream-token";

export class ClientAccess {
  readonly #d: ClientAccessDeps;
  readonly #privateTags = new LRUCache<string, PrivateTagRecord>({ max: 20_000 });

  constructor(deps: ClientAccessDeps) {
    this.#d = deps;
  }

  // ---- manifests ---------------------------------------------------------

  async manifest(route: Route, ref: Reference, q: Requester): Promise<ManifestResult> {
    if (ref.kind === "digest") {
      return this.#byDigest(route, ref.digest, q, "manifest", (r) => this.#d.pullThrough.manifest(r, ref), undefined);
    }
    if (this.#knownPrivate(route)) return this.#privateTag(route, ref.tag, q);
    let result: ManifestResult;
    try {
      result = await this.#d.pullThrough.manifest(route, ref);
    } catch (err) {
      if (this.#fallsToClient(route, err, q)) return this.#privateTag(route, ref.tag, q);
      throw err;
    }
    const digest = tryParseDigest(result.manifest.digest);
    if (digest) await this.#recheck(route, digest, q, "manifest");
    return result;
  }

  /** A tag of a repository tug's own identity cannot read: resolved and confirmed with the client's token. */
  async #privateTag(route: Route, tag: string, q: Requester): Promise<ManifestResult> {
    const token = this.#tokenOf(route, q);
    if (token === undefined) throw await this.challenge(route, q);
    const { index, now, options, logger } = this.#d;
    const key = `${route.upstream.host}\n${route.repository}\n${tag}`;
    const rec = this.#privateTags.get(key);
    const age = rec ? now() - rec.fetchedAt : Infinity;
    const confirmed = index.isConfirmed(route, token);
    let digest: Digest;
    let cache: CacheStatus;
    if (rec && confirmed && age >= 0 && age < options.tagTTL) {
      digest = rec.digest;
      cache = "HIT";
    } else {
      let head: { status: number; digest: string | undefined } | undefined;
      try {
        head = await this.#head(route, token, "manifest", tag);
      } catch (err) {
        if (!(rec && confirmed && isUpstreamOutage(err) && age < options.tagTTL + options.staleIfError)) throw err;
        logger.warn({ upstream: route.upstream.host, repository: route.repository, tag, reason: (err as Error).message }, "serving a stale private tag to a confirmed client: the upstream failed");
      }
      if (head === undefined) {
        digest = rec!.digest;
        cache = "STALE";
      } else {
        if (head.status === 404) throw new RegistryError("MANIFEST_UNKNOWN", `manifest unknown to upstream ${route.upstream.host}`, { detail: { upstream: route.upstream.host, status: 404 } });
        if (head.status !== 200) {
          index.revoke(route, token);
          throw await this.challenge(route, q);
        }
        const d = head.digest !== undefined ? tryParseDigest(head.digest) : undefined;
        if (!d) {
          throw new RegistryError("UNAVAILABLE", `upstream ${route.upstream.host} named no digest for a private tag`, { status: 502, detail: { upstream: route.upstream.host } });
        }
        index.confirm(route, token);
        index.notePrivateRepo(route);
        digest = d;
        cache = rec?.digest.value === d.value ? "REVALIDATED" : "MISS";
        this.#privateTags.set(key, { digest: d, fetchedAt: now() });
      }
    }
    // The HEAD with this token said the tag is this digest: the digest is this repository's.
    if (!(await this.#presentPublic("manifest", digest))) await index.addRoute(digest, route);
    const r = await this.#d.pullThrough.manifest(asClient(route, token), { kind: "digest", digest });
    return { manifest: r.manifest, cache: cache === "HIT" && r.cache === "MISS" ? "MISS" : cache };
  }

  // ---- blobs -------------------------------------------------------------

  async blob(route: Route, digest: Digest, method: "GET" | "HEAD", range: string | undefined, q: Requester): Promise<BlobResult> {
    return this.#byDigest(route, digest, q, "blob", (r) => this.#d.pullThrough.blob(r, digest, method, range), (r) => r.body);
  }

  // ---- by digest (blobs, manifests) -------------------------------------

  async #byDigest<R>(route: Route, d: Digest, q: Requester, kind: Kind, serve: (route: Route) => Promise<R>, bodyOf: ((r: R) => Readable | undefined) | undefined): Promise<R> {
    const routes = await this.#d.index.routesOf(d);
    if (routes) {
      const as = await this.#authorizeMarked(route, d, q, kind, routes);
      return serve(as === "public" ? route : asClient(route, as.token));
    }
    // Not cached, from a repository tug is refused: straight to the client's token (or a challenge).
    if (this.#knownPrivate(route) && !(await this.#present(kind, d))) return this.#privateFetch(route, d, q, kind, serve);
    let result: R;
    try {
      result = await serve(route);
    } catch (err) {
      if (this.#fallsToClient(route, err, q)) return this.#privateFetch(route, d, q, kind, serve);
      throw err;
    }
    try {
      await this.#recheck(route, d, q, kind);
    } catch (err) {
      const body = bodyOf?.(result);
      if (body) {
        body.once("error", () => undefined); // destroying some streams emits an abort error: nobody reads it
        body.destroy();
      }
      throw err;
    }
    return result;
  }

  /** Fetches d with the client's token, after confirming that token for d in route and marking d private. */
  async #privateFetch<R>(route: Route, d: Digest, q: Requester, kind: Kind, serve: (route: Route) => Promise<R>): Promise<R> {
    const token = this.#tokenOf(route, q);
    if (token === undefined) throw await this.challenge(route, q);
    const { status } = await this.#head(route, token, kind, d.value);
    if (status === 200) {
      await this.#grant(route, token, d);
      this.#d.index.notePrivateRepo(route);
      return serve(asClient(route, token));
    }
    if (status === 404) throw unknown(kind, route, 404);
    this.#d.index.revoke(route, token);
    throw await this.challenge(route, q);
  }

  /** After a plain answer: if d has become private meanwhile, rule 2 decides. */
  async #recheck(route: Route, d: Digest, q: Requester, kind: Kind): Promise<void> {
    const routes = await this.#d.index.routesOf(d);
    if (routes) await this.#authorizeMarked(route, d, q, kind, routes);
  }

  /** Rule 2: may this requester have private d through route? Resolves to how to fetch it, or throws. */
  async #authorizeMarked(route: Route, d: Digest, q: Requester, kind: Kind, routes: ReadonlySet<RouteKey>): Promise<"public" | { token: string }> {
    const { index, logger } = this.#d;
    const token = this.#tokenOf(route, q);
    const marked = routes.has(routeKey(route));
    if (token !== undefined && marked && index.isConfirmed(route, token)) return { token };
    // Fetched privately through this very route: the client's token is the likely way in.
    const clientFirst = token !== undefined && (marked || this.#knownPrivate(route));
    let clientStatus: number | undefined;
    if (clientFirst) {
      clientStatus = (await this.#head(route, token, kind, d.value)).status;
      if (clientStatus === 200) {
        await this.#grant(route, token, d);
        return { token };
      }
    }
    let tugStatus: number | undefined;
    if (!this.#knownPrivate(route)) {
      tugStatus = (await this.#head(route, undefined, kind, d.value)).status;
      if (tugStatus === 200) {
        await index.clear(d);
        logger.info({ upstream: route.upstream.host, repository: route.repository, digest: d.value }, "private content proved public: tug's own identity reads it upstream");
        return "public";
      }
      if (route.upstream.clientAuth && (tugStatus === 401 || tugStatus === 403)) index.notePrivateRepo(route);
    }
    if (token !== undefined && !clientFirst) {
      clientStatus = (await this.#head(route, token, kind, d.value)).status;
      if (clientStatus === 200) {
        await this.#grant(route, token, d);
        return { token };
      }
    }
    if (token !== undefined) index.revoke(route, token);
    if (route.upstream.clientAuth) {
      // Not there, as the upstream says to the client (or, for a client without a usable token, to tug).
      if (clientStatus === 404 || (clientStatus === undefined && tugStatus === 404)) throw unknown(kind, route, 404);
      throw await this.challenge(route, q);
    }
    if (tugStatus === 404) throw unknown(kind, route, 404);
    throw new RegistryError("DENIED", `upstream ${route.upstream.host} denied access`, { status: 403, detail: { upstream: route.upstream.host, status: tugStatus } });
  }

  async #grant(route: Route, token: string, d: Digest): Promise<void> {
    this.#d.index.confirm(route, token);
    await this.#d.index.addRoute(d, route);
  }

  // ---- tags/list ---------------------------------------------------------

  async tags(route: Route, q: Requester): Promise<TagListResult> {
    if (!this.#knownPrivate(route)) {
      try {
        return await this.#d.tagLists.get(route, this.#d.clientFor(route), "public");
      } catch (err) {
        if (!this.#fallsToClient(route, err, q)) throw err;
      }
    }
    return this.#privateTagList(route, q);
  }

  async #privateTagList(route: Route, q: Requester): Promise<TagListResult> {
    const token = this.#tokenOf(route, q);
    if (token === undefined) throw await this.challenge(route, q);
    const { index, tagLists } = this.#d;
    const found = tagLists.peek(route, "private");
    if (found?.fresh) {
      const first = found.entry.tags[0];
      if (!index.isConfirmed(route, token) && first !== undefined) {
        // tags/list answers no HEAD (distribution: 405): a HEAD of one of its tags confirms the token.
        const { status } = await this.#head(route, token, "manifest", first);
        if (status === 200) index.confirm(route, token);
        else if (status !== 404) {
          index.revoke(route, token);
          throw await this.challenge(route, q);
        }
      }
      if (index.isConfirmed(route, token)) return { tags: found.entry.tags, cache: "HIT" };
    }
    try {
      // The upstream answering the list to this token is its confirmation.
      const entry = await tagLists.refresh(route, this.#d.clientFor(asClient(route, token)), "private", hashToken(token));
      index.confirm(route, token);
      index.notePrivateRepo(route);
      return { tags: entry.tags, cache: "MISS" };
    } catch (err) {
      if (err instanceof RegistryError && err.code === "DENIED") {
        index.revoke(route, token);
        throw await this.challenge(route, q);
      }
      if (isUpstreamOutage(err) && found?.servableStale && index.isConfirmed(route, token)) return { tags: found.entry.tags, cache: "STALE" };
      throw err;
    }
  }

  // ---- referrers ---------------------------------------------------------

  /** GET /v2/<repo>/referrers/<digest>: passed through, never cached; as the client where tug is refused. */
  async referrers(route: Route, digest: Digest, query: string, q: Requester): Promise<UpstreamResponse> {
    const path = `/v2/${route.repository}/referrers/${digest.value}${query}`;
    const opts = { repository: route.repository, accept: OCI_INDEX };
    if (!this.#knownPrivate(route)) {
      const res = await this.#d.clientFor(route).fetch("GET", path, opts);
      if (!(route.upstream.clientAuth && (res.status === 401 || res.status === 403))) return res;
      await drain(res.body);
      this.#d.index.notePrivateRepo(route);
    }
    const token = this.#tokenOf(route, q);
    if (token === undefined) throw await this.challenge(route, q);
    const res = await this.#d.clientFor(asClient(route, token)).fetch("GET", path, opts);
    if (res.status === 401 || res.status === 403) {
      await drain(res.body);
      throw await this.challenge(route, q);
    }
    return res;
  }

  // ---- GET /v2/ ----------------------------------------------------------

  /**
   * GET /v2/: 401 with tug's challenge when the upstream it stands for (the ns
   * one, else the default, else the first with clientAuth) has clientAuth and
   * the client sent no token — containers/image and Docker only ever send
   * credentials after a challenge here. Any token is then accepted: /v2/
   * serves no content, and a login's credentials were checked upstream when
   * tug's token endpoint relayed them.
   */
  async base(ns: string | undefined, q: Omit<Requester, "clientName">): Promise<void> {
    const upstream = this.baseUpstream(ns);
    if (!upstream?.clientAuth || q.token !== undefined) return;
    throw challengeError(q.realm, await this.#serviceOf(upstream), undefined);
  }

  baseUpstream(ns: string | undefined): UpstreamConfig | undefined {
    const table = this.#d.upstreams;
    if (ns) return table.lookup(ns);
    if (table.default?.clientAuth) return table.default;
    return table.all().find((u) => u.clientAuth) ?? table.default;
  }

  /** 401 UNAUTHORIZED with a Bearer challenge naming tug's token endpoint, the upstream's service and the scope. */
  async challenge(route: Route, q: Requester): Promise<RegistryError> {
    return challengeError(q.realm, await this.#serviceOf(route.upstream), `repository:${q.clientName}:pull`);
  }

  // ---- helpers -----------------------------------------------------------

  /** The upstream's own service name (from its challenge, discovered once); its host when it cannot be learned. */
  async #serviceOf(upstream: UpstreamConfig): Promise<string> {
    const client = this.#d.clientFor({ upstream, repository: "" });
    if (client.service === undefined) await client.authChallenge().catch(() => undefined);
    return client.service ?? upstream.host;
  }

  #tokenOf(route: Route, q: Requester): string | undefined {
    return route.upstream.clientAuth && q.token !== undefined && q.token !== NO_UPSTREAM_TOKEN ? q.token : undefined;
  }

  #knownPrivate(route: Route): boolean {
    return route.upstream.clientAuth && this.#d.index.isPrivateRepo(route);
  }

  /**
   * Whether a failure of tug's own identity sends the request on as the
   * client: a refusal (401/403), or — for a client holding a token — a 404,
   * which some registries answer instead of 401 for a private repository.
   */
  #fallsToClient(route: Route, err: unknown, q: Requester): boolean {
    if (!route.upstream.clientAuth || !(err instanceof RegistryError)) return false;
    if (err.code === "DENIED") {
      this.#d.index.notePrivateRepo(route);
      return true;
    }
    const unknownCode = err.code === "MANIFEST_UNKNOWN" || err.code === "BLOB_UNKNOWN" || err.code === "NAME_UNKNOWN";
    return unknownCode && this.#tokenOf(route, q) !== undefined;
  }

  /** In the cache (or being filled) at all. */
  async #present(kind: Kind, d: Digest): Promise<boolean> {
    if (kind === "manifest") return (await this.#d.manifests.get(d)) !== undefined;
    return this.#d.blobs.fillFor(d) !== undefined || (await this.#d.blobs.stat(d)) !== undefined;
  }

  /** In the cache with no private mark: public content, which must not be marked private. */
  async #presentPublic(kind: Kind, d: Digest): Promise<boolean> {
    return (await this.#present(kind, d)) && (await this.#d.index.routesOf(d)) === undefined;
  }

  /** HEAD of a manifest (by tag or digest) or blob in route, as the client (token) or as tug. */
  async #head(route: Route, token: string | undefined, kind: Kind, reference: string): Promise<{ status: number; digest: string | undefined }> {
    const client = this.#d.clientFor(token === undefined ? route : asClient(route, token));
    const path = `/v2/${route.repository}/${kind === "manifest" ? "manifests" : "blobs"}/${reference}`;
    const res = await client.fetch("HEAD", path, { repository: route.repository, ...(kind === "manifest" ? { accept: MANIFEST_ACCEPT } : {}) });
    await drain(res.body);
    if (res.status >= 500 || res.status === 429) throw upstreamStatusError(res, route.upstream.host, kind);
    return { status: res.status, digest: headerValue(res.headers["docker-content-digest"]) };
  }
}

function asClient(route: Route, token: string): Route {
  return { upstream: route.upstream, repository: route.repository, clientToken: token };
}

function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

function unknown(kind: Kind, route: Route, status: number): RegistryError {
  return new RegistryError(kind === "manifest" ? "MANIFEST_UNKNOWN" : "BLOB_UNKNOWN", `${kind} unknown to upstream ${route.upstream.host}`, {
    detail: { upstream: route.upstream.host, status },
  });
}

/** Challenge parameters are quoted strings: quotes and backslashes from upstream values are dropped. */
function quoted(v: string): string {
  return `"${v.replace(/["\\\r\n]/g, "")}"`;
}

export function challengeError(realm: string, service: string, scope: string | undefined): RegistryError {
  const params = [`realm=${quoted(realm)}`, `service=${quoted(service)}`];
  if (scope !== undefined) params.push(`scope=${quoted(scope)}`);
  return new RegistryError("UNAUTHORIZED", "authentication required", {
    headers: { "WWW-Authenticate": `Bearer ${params.join(",")}` },
  });
}
