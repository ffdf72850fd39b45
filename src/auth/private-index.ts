// What tug knows about private content (clientAuth, DESIGN.md "Auth"):
//
// - marks: a digest fetched with a client's own token carries the set of
//   (upstream, repository) routes it was fetched or confirmed through. Blobs and
//   manifests are stored once per digest and shared by every route, so the mark
//   lives with the digest, on disk next to the cache (it must survive a
//   restart: the content does), and is written *before* a private fetch starts,
//   so that nobody can follow that fill or read that file while it looks public.
//   No mark means public. A mark is removed when tug's own identity proves the
//   digest readable upstream (then anyone could fetch those bytes anyway).
// - private repositories: routes whose content tug's own identity was refused,
//   remembered a few minutes so that later requests go straight to the
//   client's token instead of failing with tug's first.
// - confirmations: (route, token) pairs the upstream accepted for a HEAD, kept
//   at most 60 s, so one client's pull makes one confirming request per
//   repository instead of one per blob.
import { createHash } from "node:crypto";
import { readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { LRUCache } from "lru-cache";
import type { Digest } from "../oci/digest.js";
import { writeFileAtomic } from "../cache/atomic-file.js";
import type { Layout } from "../cache/layout.js";
import type { Route } from "../upstream/routing.js";

/** "<upstream host>\n<repository>": neither may contain a newline. */
export type RouteKey = string;

export function routeKey(route: Pick<Route, "upstream" | "repository">): RouteKey {
  return `${route.upstream.host}\n${route.repository}`;
}

export interface PrivateIndexOptions {
  readonly layout: Layout;
  readonly now: () => number;
  /**
   * Replicas share dataDir (redis.url set): another process may mark a digest
   * at any time, so every lookup reads the disk instead of trusting memory.
   */
  readonly shared?: boolean;
  /** How long a confirmed (route, token) is trusted; at most 60 s. */
  readonly confirmTTL?: number;
  /** How long a repository refused to tug's identity is treated as private without asking again. */
  readonly privateRepoTTL?: number;
}

interface MarkFile {
  routes: Array<{ upstream: string; repository: string }>;
}

const MAX_CONFIRM_MS = 60_000;

export class PrivateIndex {
  readonly #o: PrivateIndexOptions;
  readonly #marks = new Map<string, Set<RouteKey>>();
  /** Writes of one digest's mark run one after another (read-modify-write). */
  readonly #writes = new Map<string, Promise<void>>();
  readonly #privateRepos = new LRUCache<RouteKey, number>({ max: 10_000 });
  readonly #confirmed = new LRUCache<string, number>({ max: 50_000 });
  readonly #confirmTTL: number;
  readonly #privateRepoTTL: number;

  constructor(opts: PrivateIndexOptions) {
    this.#o = opts;
    this.#confirmTTL = Math.min(opts.confirmTTL ?? MAX_CONFIRM_MS, MAX_CONFIRM_MS);
    this.#privateRepoTTL = opts.privateRepoTTL ?? 5 * 60_000;
  }

  /** Reads every mark on disk into memory (start-up). */
  async load(): Promise<number> {
    const root = join(this.#o.layout.root, "private");
    let loaded = 0;
    for (const algorithm of await listDir(root)) {
      for (const prefix of await listDir(join(root, algorithm))) {
        for (const name of await listDir(join(root, algorithm, prefix))) {
          const hex = name.endsWith(".json") ? name.slice(0, -5) : undefined;
          if (!hex) continue;
          const routes = await readMark(join(root, algorithm, prefix, name));
          if (routes) {
            this.#marks.set(`${algorithm}:${hex}`, routes);
            loaded++;
          }
        }
      }
    }
    return loaded;
  }

  /** The routes a private digest may be served through; undefined = public. */
  async routesOf(d: Digest): Promise<ReadonlySet<RouteKey> | undefined> {
    if (!this.#o.shared) return this.#marks.get(d.value);
    const routes = await readMark(this.#o.layout.privateMark(d));
    if (routes) this.#marks.set(d.value, routes);
    else this.#marks.delete(d.value);
    return routes;
  }

  /** Marks d private to route (adding to its routes); on disk before it returns. */
  addRoute(d: Digest, route: Pick<Route, "upstream" | "repository">): Promise<void> {
    const key = routeKey(route);
    return this.#serialize(d, async () => {
      const current = this.#o.shared ? await readMark(this.#o.layout.privateMark(d)) : this.#marks.get(d.value);
      if (current?.has(key)) return;
      const next = new Set(current ?? []);
      next.add(key);
      // Memory first: a lookup racing with the disk write must already see the mark.
      this.#marks.set(d.value, next);
      const file: MarkFile = {
        routes: [...next].map((k) => {
          const [upstream = "", repository = ""] = k.split("\n");
          return { upstream, repository };
        }),
      };
      await writeFileAtomic(this.#o.layout.privateMark(d), JSON.stringify(file), this.#o.layout.temp("private"));
    });
  }

  /** Removes d's mark: tug's own identity has read it upstream, so it is public. */
  clear(d: Digest): Promise<void> {
    return this.#serialize(d, async () => {
      this.#marks.delete(d.value);
      await rm(this.#o.layout.privateMark(d), { force: true });
    });
  }

  notePrivateRepo(route: Pick<Route, "upstream" | "repository">): void {
    this.#privateRepos.set(routeKey(route), this.#o.now() + this.#privateRepoTTL);
  }

  isPrivateRepo(route: Pick<Route, "upstream" | "repository">): boolean {
    const key = routeKey(route);
    const until = this.#privateRepos.get(key);
    if (until === undefined) return false;
    if (until <= this.#o.now()) {
      this.#privateRepos.delete(key);
      return false;
    }
    return true;
  }

  /** The upstream accepted token for route just now. */
  confirm(route: Pick<Route, "upstream" | "repository">, token: string): void {
    this.#confirmed.set(confirmKey(route, token), this.#o.now() + this.#confirmTTL);
  }

  isConfirmed(route: Pick<Route, "upstream" | "repository">, token: string): boolean {
    const key = confirmKey(route, token);
    const until = this.#confirmed.get(key);
    if (until === undefined) return false;
    if (until <= this.#o.now()) {
      this.#confirmed.delete(key);
      return false;
    }
    return true;
  }

  /** Forgets a confirmation (the upstream has since refused that token). */
  revoke(route: Pick<Route, "upstream" | "repository">, token: string): void {
    this.#confirmed.delete(confirmKey(route, token));
  }

  #serialize(d: Digest, fn: () => Promise<void>): Promise<void> {
    const previous = this.#writes.get(d.value) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.#writes.set(d.value, tail);
    void tail.then(() => {
      if (this.#writes.get(d.value) === tail) this.#writes.delete(d.value);
    });
    return next;
  }
}

/** Tokens are kept only as hashes: a heap dump shows no usable credential. */
function confirmKey(route: Pick<Route, "upstream" | "repository">, token: string): string {
  return `${routeKey(route)}\n${createHash("sha256").update(token).digest("hex")}`;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

async function readMark(path: string): Promise<Set<RouteKey> | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as Partial<MarkFile>;
    const routes = new Set<RouteKey>();
    for (const r of parsed.routes ?? []) {
      if (typeof r.upstream === "string" && typeof r.repository === "string") routes.add(`${r.upstream}\n${r.repository}`);
    }
    return routes;
  } catch {
    // A damaged mark still says "private": fail closed, with no route allowed.
    return new Set();
  }
}
