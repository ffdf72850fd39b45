// Tag lists per (upstream, repository): fetched whole from the upstream
// (following the upstream's own `Link: <…>; rel="next"` pages), kept briefly,
// served stale when the upstream fails. tug paginates the whole list itself
// (see http/tags-route.ts), so `n`/`last` work even against upstreams that
// ignore them (distribution 2.8 does).
import type { Logger } from "pino";
import { LRUCache } from "lru-cache";
import { SingleFlight } from "../coordination/single-flight.js";
import { RegistryError } from "../oci/errors.js";
import { isValidTag } from "../oci/reference.js";
import type { Metrics } from "../observability/metrics.js";
import { drain, headerValue, isUpstreamOutage, readLimited, upstreamStatusError, type RegistryClient } from "../upstream/registry-client.js";
import type { Route } from "../upstream/routing.js";
import type { CacheStatus } from "./pull-through.js";

/** Most pages followed for one list; a registry that pages forever is cut off here. */
export const MAX_TAG_PAGES = 200;
/** Most tags kept for one repository. */
export const MAX_TAGS = 100_000;
/** Cap on one page's body (a page of 1,000 long tags is ~130 KiB). */
const MAX_PAGE_BYTES = 4 * 1024 * 1024;
/** Tag lists are kept for cache.tagTTL, but never longer than this: they change with every push. */
export const MAX_TAG_LIST_TTL = 30_000;

/** Whose list: fetched with tug's own identity ("public") or with a client's token ("private"). */
export type TagListScope = "public" | "private";

export interface TagListEntry {
  /** Sorted, unique. */
  readonly tags: readonly string[];
  readonly fetchedAt: number;
}

export interface TagListResult {
  readonly tags: readonly string[];
  readonly cache: CacheStatus;
}

export interface TagListsOptions {
  readonly now: () => number;
  /** ms a list is served with no upstream contact. */
  readonly ttl: number;
  /** ms past ttl a list may be served when the upstream fails. */
  readonly staleIfError: number;
  readonly logger: Logger;
  readonly metrics?: Metrics;
}

export class TagLists {
  readonly #o: TagListsOptions;
  readonly #entries = new LRUCache<string, TagListEntry>({ maxSize: 2_000_000, sizeCalculation: (e) => e.tags.length + 1 });
  readonly #flight = new SingleFlight<TagListEntry>();

  constructor(opts: TagListsOptions) {
    this.#o = opts;
  }

  /** The stored list and whether it is within ttl, without any upstream contact. */
  peek(route: Route, scope: TagListScope): { entry: TagListEntry; fresh: boolean; servableStale: boolean } | undefined {
    const entry = this.#entries.get(entryKey(route, scope));
    if (!entry) return undefined;
    const age = this.#o.now() - entry.fetchedAt;
    return { entry, fresh: age >= 0 && age < this.#o.ttl, servableStale: age < this.#o.ttl + this.#o.staleIfError };
  }

  /**
   * The list as `client` sees it: fresh from the store, else fetched (one
   * fetch per flightKey at a time), else, when the upstream fails, stale.
   * flightKey separates identities: a private list fetched with one client's
   * token is never handed to another client's concurrent request.
   */
  async get(route: Route, client: RegistryClient, scope: TagListScope, flightKey = ""): Promise<TagListResult> {
    const found = this.peek(route, scope);
    if (found?.fresh) return this.#count({ tags: found.entry.tags, cache: "HIT" });
    try {
      const entry = await this.refresh(route, client, scope, flightKey);
      return this.#count({ tags: entry.tags, cache: "MISS" });
    } catch (err) {
      if (found?.servableStale && isUpstreamOutage(err)) {
        this.#o.logger.warn({ upstream: route.upstream.host, repository: route.repository, reason: (err as Error).message }, "serving a stale tag list: the upstream failed");
        return this.#count({ tags: found.entry.tags, cache: "STALE" });
      }
      throw err;
    }
  }

  /** Fetches the whole list with client and stores it. */
  refresh(route: Route, client: RegistryClient, scope: TagListScope, flightKey = ""): Promise<TagListEntry> {
    const key = entryKey(route, scope);
    return this.#flight.run(`${key}\n${flightKey}`, async () => {
      const tags = await fetchAllTags(route, client, this.#o.logger);
      const entry: TagListEntry = { tags, fetchedAt: this.#o.now() };
      this.#entries.set(key, entry);
      return entry;
    });
  }

  #count(r: TagListResult): TagListResult {
    this.#o.metrics?.cacheRequests.inc({ kind: "tags", outcome: r.cache.toLowerCase() });
    return r;
  }
}

function entryKey(route: Route, scope: TagListScope): string {
  return `${scope}\n${route.upstream.host}\n${route.repository}`;
}

/**
 * GETs /v2/<repo>/tags/list and every page its Link headers name. A next page
 * must stay on the upstream's origin and on this repository's tags/list path:
 * a Link is never an address to dial (PROTOCOL.md lesson 16).
 */
export async function fetchAllTags(route: Route, client: RegistryClient, logger: Logger): Promise<string[]> {
  const listPath = `/v2/${route.repository}/tags/list`;
  const origin = new URL(route.upstream.url);
  const seen = new Set<string>();
  let next: string | undefined = listPath;
  for (let page = 0; next !== undefined; page++) {
    if (page >= MAX_TAG_PAGES) {
      logger.warn({ upstream: route.upstream.host, repository: route.repository, pages: page }, "tag list has too many pages: serving what was read");
      break;
    }
    const res = await client.fetch("GET", next, { repository: route.repository, accept: "application/json" });
    if (res.status !== 200) {
      await drain(res.body);
      throw upstreamStatusError(res, route.upstream.host, "tags");
    }
    const body = await readLimited(res.body, MAX_PAGE_BYTES);
    let parsed: { tags?: unknown };
    try {
      parsed = JSON.parse(body.toString("utf8")) as { tags?: unknown };
    } catch {
      throw new RegistryError("UNAVAILABLE", `upstream ${route.upstream.host} sent an invalid tag list`, { status: 502 });
    }
    // distribution answers "tags": null for a repository with no tags left.
    const tags = parsed.tags === null || parsed.tags === undefined ? [] : parsed.tags;
    if (!Array.isArray(tags)) throw new RegistryError("UNAVAILABLE", `upstream ${route.upstream.host} sent an invalid tag list`, { status: 502 });
    for (const t of tags) {
      if (typeof t === "string" && isValidTag(t)) seen.add(t);
    }
    if (seen.size >= MAX_TAGS) {
      logger.warn({ upstream: route.upstream.host, repository: route.repository, tags: seen.size }, "tag list is too long: serving the first tags read");
      break;
    }
    next = nextPage(headerValue(res.headers["link"]), origin, listPath, route.upstream.host);
  }
  return [...seen].sort(compareTags).slice(0, MAX_TAGS);
}

/** Lexical order by UTF-16 code units: for the ASCII tag grammar, byte order, as distribution sorts. */
export function compareTags(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function nextPage(link: string | undefined, origin: URL, listPath: string, host: string): string | undefined {
  if (link === undefined) return undefined;
  const m = /<([^>]*)>\s*;[^,]*rel="?next"?/i.exec(link);
  if (!m) return undefined;
  let url: URL;
  try {
    url = new URL(m[1]!, origin);
  } catch {
    throw new RegistryError("UNAVAILABLE", `upstream ${host} sent an invalid tag list Link`, { status: 502 });
  }
  if (url.origin !== origin.origin || url.pathname !== listPath) {
    throw new RegistryError("UNAVAILABLE", `upstream ${host} sent a tag list Link off its own tags/list`, { status: 502, detail: { upstream: host } });
  }
  return url.pathname + url.search;
}
