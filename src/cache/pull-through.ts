// The pull-through service: answers manifest and blob requests from the cache,
// going upstream only on a miss or to revalidate an expired tag, and never
// twice for the same thing at once.
import type { Readable } from "node:stream";
import type { Logger } from "pino";
import { SingleFlight } from "../coordination/single-flight.js";
import { leaseKeys, type Coordinator } from "../coordination/coordinator.js";
import { underLease } from "../coordination/under-lease.js";
import { digestOf, parseDigest, type Digest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, manifestMediaType } from "../oci/media-types.js";
import type { Reference } from "../oci/reference.js";
import { headerValue, isUpstreamOutage, readLimited, translateNetworkError, upstreamStatusError, drain, type RegistryClient } from "../upstream/registry-client.js";
import type { Route } from "../upstream/routing.js";
import type { BlobFill } from "./blob-fill.js";
import type { BlobStore } from "./blob-store.js";
import { FleetFill } from "./fleet-fill.js";
import type { FleetFills } from "./fleet-fills.js";
import type { ResumePoint } from "./resume-point.js";
import type { ManifestStore, StoredManifest } from "./manifest-store.js";
import { parseRange, type ByteRange } from "./range.js";
import { tagFreshness, type TagRecord, type TagStore } from "./tag-store.js";
import type { TagKey } from "./layout.js";
import type { Metrics } from "../observability/metrics.js";

/** HIT: from cache, no upstream contact. REVALIDATED: cache confirmed by an upstream HEAD. MISS: fetched. STALE: served from cache because the upstream failed. */
export type CacheStatus = "HIT" | "MISS" | "REVALIDATED" | "STALE";

export interface ManifestResult {
  readonly manifest: StoredManifest;
  readonly cache: CacheStatus;
}

export interface BlobResult {
  readonly status: 200 | 206;
  readonly digest: Digest;
  /** Total size of the blob, when known. */
  readonly size: number | undefined;
  readonly range: ByteRange | undefined;
  /** undefined for HEAD. */
  readonly body: Readable | undefined;
  readonly cache: CacheStatus;
}

export interface PullThroughOptions {
  readonly tagTTL: number;
  readonly staleIfError: number;
  readonly fillTimeout: number;
  /** Longest a whole upstream manifest fetch (headers and body) may take; a trickle fails fast. */
  readonly manifestTimeout?: number;
}

export interface PullThroughDeps {
  readonly manifests: ManifestStore;
  readonly tags: TagStore;
  readonly blobs: BlobStore;
  readonly clientFor: (route: Route) => RegistryClient;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly now: () => number;
  readonly options: PullThroughOptions;
  /** Leases for manifest fetches, so replicas sharing a Redis fetch each once (none: in-process only). */
  readonly coordinator?: Coordinator;
  /** Blob fills coordinated across replicas (none: in-process only). */
  readonly fleet?: FleetFills;
}

export class PullThrough {
  readonly #d: PullThroughDeps;
  readonly #manifestFlight = new SingleFlight<ManifestResult>();
  readonly #blobFlight = new SingleFlight<BlobFill | FleetFill | undefined>();

  constructor(deps: PullThroughDeps) {
    this.#d = deps;
  }

  // ---- manifests ---------------------------------------------------------

  async manifest(route: Route, ref: Reference): Promise<ManifestResult> {
    const r = await this.#manifest(route, ref);
    this.#d.metrics.cacheRequests.inc({ kind: "manifest", outcome: r.cache.toLowerCase() });
    return r;
  }

  async #manifest(route: Route, ref: Reference): Promise<ManifestResult> {
    if (ref.kind === "digest") {
      const cached = await this.#d.manifests.get(ref.digest);
      if (cached) return { manifest: cached, cache: "HIT" };
      // Digest content never changes: one fetch serves every upstream and repository.
      return this.#manifestFlight.run(`d\n${ref.digest.value}`, () =>
        this.#leased(leaseKeys.manifestByDigest(ref.digest.value), async () => {
          const again = await this.#d.manifests.get(ref.digest);
          if (again) return { manifest: again, cache: "HIT" };
          return { manifest: await this.#fetchManifest(route, ref.digest.value, ref.digest), cache: "MISS" };
        }),
      );
    }
    const key: TagKey = { upstream: route.upstream.host, repository: route.repository, tag: ref.tag };
    const rec = await this.#d.tags.get(key);
    if (rec && tagFreshness(rec, this.#d.now(), this.#d.options.tagTTL, this.#d.options.staleIfError) === "fresh") {
      const m = await this.#d.manifests.get(parseDigest(rec.digest));
      if (m) return { manifest: m, cache: "HIT" };
    }
    return this.#manifestFlight.run(`t\n${key.upstream}\n${key.repository}\n${key.tag}`, () =>
      this.#leased(leaseKeys.manifestByTag(key.upstream, key.repository, key.tag), () => this.#revalidateTag(route, key)),
    );
  }

  /**
   * Runs a manifest job under its fleet-wide lease: a replica that finds it
   * held waits for the holder, then its job finds the holder's answer in the
   * shared cache (the job always looks there first).
   */
  #leased(key: string, job: () => Promise<ManifestResult>): Promise<ManifestResult> {
    const { coordinator, metrics, options } = this.#d;
    if (!coordinator) return job();
    return underLease(coordinator, key, job, {
      maxWaitMs: 2 * (options.manifestTimeout ?? 30_000),
      onWait: () => metrics.lockWaits.inc(),
    });
  }

  async #revalidateTag(route: Route, key: TagKey): Promise<ManifestResult> {
    const { now, options, tags, manifests, logger } = this.#d;
    const rec = await tags.get(key);
    const cached = rec ? await manifests.get(parseDigest(rec.digest)) : undefined;
    if (rec && cached && tagFreshness(rec, now(), options.tagTTL, options.staleIfError) === "fresh") {
      return { manifest: cached, cache: "HIT" }; // refreshed by a flight that just ended
    }
    const client = this.#d.clientFor(route);
    const path = `/v2/${route.repository}/manifests/${key.tag}`;
    try {
      if (rec && cached) {
        // A HEAD does not count against Docker Hub's pull quota.
        const head = await client.fetch("HEAD", path, { repository: route.repository, accept: MANIFEST_ACCEPT });
        await drain(head.body);
        if (head.status === 200 && headerValue(head.headers["docker-content-digest"]) === rec.digest) {
          await tags.put(key, { ...rec, fetchedAt: now() });
          return { manifest: cached, cache: "REVALIDATED" };
        }
        if (head.status !== 200) throw upstreamStatusError(head, route.upstream.host, "manifest");
      }
      const m = await this.#fetchManifest(route, key.tag, undefined);
      const fresh: TagRecord = { digest: m.digest, mediaType: m.mediaType, size: m.bytes.length, fetchedAt: now() };
      await tags.put(key, fresh);
      return { manifest: m, cache: "MISS" };
    } catch (err) {
      if (rec && cached && isUpstreamOutage(err) && tagFreshness(rec, now(), options.tagTTL, options.staleIfError) !== "expired") {
        logger.warn({ upstream: route.upstream.host, repository: route.repository, tag: key.tag, reason: (err as Error).message }, "serving a stale tag: the upstream failed");
        return { manifest: cached, cache: "STALE" };
      }
      throw err;
    }
  }

  /** GETs a manifest, verifies it (against expected when by digest), stores it. */
  async #fetchManifest(route: Route, reference: string, expected: Digest | undefined): Promise<StoredManifest> {
    const client = this.#d.clientFor(route);
    const limit = this.#d.options.manifestTimeout;
    const res = await client.fetch("GET", `/v2/${route.repository}/manifests/${reference}`, {
      repository: route.repository,
      accept: MANIFEST_ACCEPT,
      ...(limit !== undefined ? { signal: AbortSignal.timeout(limit) } : {}),
    });
    if (res.status !== 200) {
      await drain(res.body);
      throw upstreamStatusError(res, route.upstream.host, "manifest");
    }
    const declared = Number(headerValue(res.headers["content-length"]));
    if (declared > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw tooLarge(route);
    }
    let bytes: Buffer;
    try {
      bytes = await readLimited(res.body, MAX_MANIFEST_BYTES);
    } catch (err) {
      if (err instanceof RegistryError && err.code === "SIZE_INVALID") throw tooLarge(route);
      // A body cut short or timed out is the upstream failing (stale may be served), not tug's fault.
      const failure = translateNetworkError(err, route.upstream.host);
      client.noteBodyFailure(failure);
      throw failure;
    }
    const actual = digestOf(bytes, expected?.algorithm ?? "sha256");
    if (expected && actual.value !== expected.value) {
      throw new RegistryError("UNAVAILABLE", `upstream ${route.upstream.host} sent a manifest that does not match its digest`, {
        status: 502,
        detail: { expected: expected.value, actual: actual.value },
      });
    }
    const claimed = headerValue(res.headers["docker-content-digest"]);
    if (!expected && claimed?.startsWith("sha256:") && claimed !== actual.value) {
      throw new RegistryError("UNAVAILABLE", `upstream ${route.upstream.host} sent a manifest that does not match its Docker-Content-Digest`, {
        status: 502,
        detail: { claimed, actual: actual.value },
      });
    }
    this.#d.metrics.upstreamBytes.inc({ upstream: route.upstream.host }, bytes.length);
    const mediaType = manifestMediaType(headerValue(res.headers["content-type"]), bytes);
    return this.#d.manifests.put(actual, mediaType, bytes);
  }

  // ---- blobs -------------------------------------------------------------

  async blob(route: Route, digest: Digest, method: "GET" | "HEAD", rangeHeader: string | undefined): Promise<BlobResult> {
    const r = await this.#blob(route, digest, method, rangeHeader);
    this.#d.metrics.cacheRequests.inc({ kind: "blob", outcome: r.cache.toLowerCase() });
    return r;
  }

  async #blob(route: Route, digest: Digest, method: "GET" | "HEAD", rangeHeader: string | undefined): Promise<BlobResult> {
    const { blobs } = this.#d;
    const committed = await blobs.stat(digest);
    if (committed) {
      const range = parseRange(rangeHeader, committed.size);
      const start = range?.start ?? 0;
      const end = range?.end ?? committed.size - 1;
      const body = method === "GET" && committed.size > 0 ? blobs.read(committed, start, end) : undefined;
      return { status: range ? 206 : 200, digest, size: committed.size, range, body, cache: "HIT" };
    }
    let fill: BlobFill | FleetFill | undefined = blobs.fillFor(digest) ?? this.#d.fleet?.followerFor(digest);
    if (!fill && method === "HEAD") return this.#headBlob(route, digest);
    if (fill) {
      this.#d.metrics.coalesced.inc({ kind: "blob" });
    } else {
      if (this.#blobFlight.has(digest.value)) this.#d.metrics.coalesced.inc({ kind: "blob" });
      fill = await this.#blobFlight.run(digest.value, () => this.#startFill(route, digest));
      if (!fill) return this.#blob(route, digest, method, rangeHeader); // committed meanwhile
    }
    // Headers wait for the first servable byte: a fill that fails before it is a clear 5xx.
    if (method === "GET" && fill.size !== 0) await fill.started().catch((err: unknown) => Promise.reject(translateNetworkError(err, route.upstream.host)));
    const size = fill.size;
    const range = size !== undefined ? parseRange(rangeHeader, size) : undefined;
    const start = range?.start ?? 0;
    const end = range?.end ?? (size !== undefined ? size - 1 : Number.MAX_SAFE_INTEGER);
    const follow = (f: BlobFill | FleetFill): Readable => (f instanceof FleetFill ? f.follow(start, end) : blobs.follow(f, start, end));
    const body = method === "GET" && size !== 0 ? follow(fill) : undefined;
    return { status: range ? 206 : 200, digest, size, range, body, cache: "MISS" };
  }

  async #startFill(route: Route, digest: Digest): Promise<BlobFill | FleetFill | undefined> {
    const { blobs, fleet } = this.#d;
    if (await blobs.stat(digest)) return undefined;
    const existing = blobs.fillFor(digest) ?? fleet?.followerFor(digest);
    if (existing) return existing;
    // With replicas: lead under the blob's lease, or follow the replica that holds it.
    if (fleet) return fleet.fill(digest, (resume) => this.#fillFromUpstream(route, digest, resume));
    return this.#fillFromUpstream(route, digest, undefined);
  }

  /** GETs the blob upstream (only the rest of it when resuming a gone replica's fill) and starts filling. */
  async #fillFromUpstream(route: Route, digest: Digest, resume: ResumePoint | undefined): Promise<BlobFill> {
    const { blobs, options } = this.#d;
    const res = await this.#d.clientFor(route).fetch("GET", `/v2/${route.repository}/blobs/${digest.value}`, {
      repository: route.repository,
      ...(resume ? { range: `bytes=${resume.offset}-` } : {}),
    });
    if (res.status !== 200 && !(resume && res.status === 206)) {
      await drain(res.body);
      throw upstreamStatusError(res, route.upstream.host, "blob");
    }
    let body = res.body;
    let expected: number | undefined;
    if (resume) {
      ({ body, expectedSize: expected } = resume.body(res));
    } else {
      const len = headerValue(res.headers["content-length"]);
      expected = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
    }
    const fill = blobs.startFill(digest, body, expected, options.fillTimeout);
    const { metrics } = this.#d;
    metrics.fillsInFlight.inc();
    fill.finished.then(
      () => metrics.upstreamBytes.inc({ upstream: route.upstream.host }, fill.written - (resume?.offset ?? 0)),
      () => metrics.upstreamErrors.inc({ upstream: route.upstream.host, reason: fillFailureReason(fill.error) }),
    ).finally(() => metrics.fillsInFlight.dec());
    fill.finished.catch((err: unknown) => {
      if (!fill.abandonedByTug) this.#d.clientFor(route).noteBodyFailure(err);
      this.#d.logger.warn({ upstream: route.upstream.host, digest: digest.value, reason: (err as Error).message }, "blob fill abandoned: nothing was cached");
    });
    return fill;
  }

  /** A HEAD miss is answered from an upstream HEAD; nothing is cached. */
  async #headBlob(route: Route, digest: Digest): Promise<BlobResult> {
    const res = await this.#d.clientFor(route).fetch("HEAD", `/v2/${route.repository}/blobs/${digest.value}`, { repository: route.repository });
    await drain(res.body);
    if (res.status !== 200) throw upstreamStatusError(res, route.upstream.host, "blob");
    const len = headerValue(res.headers["content-length"]);
    const size = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
    return { status: 200, digest, size, range: undefined, body: undefined, cache: "MISS" };
  }
}

function fillFailureReason(err: Error | undefined): string {
  const m = err?.message ?? "";
  if (m.includes("do not match")) return "digest_mismatch";
  if (m.includes("cut short") || m.includes("more bytes")) return "truncated";
  if (m.includes("time")) return "timeout";
  return "unreachable";
}

function tooLarge(route: Route): RegistryError {
  return new RegistryError("MANIFEST_INVALID", `manifest from upstream ${route.upstream.host} exceeds ${MAX_MANIFEST_BYTES} bytes`, {
    status: 502,
    detail: { limit: MAX_MANIFEST_BYTES },
  });
}
