// Who does a job: one lease per key, held by one holder at a time, so that N
// requests for one thing — in one process or across a fleet of replicas — make
// one upstream fetch. MemoryCoordinator serves one process; RedisCoordinator a
// fleet sharing Redis; FailoverCoordinator uses Redis while it answers and
// memory while it does not. All of them pass test/coordination/coordinator-suite.ts.

export interface LeaseHolder {
  readonly key: string;
  /** Grows with every grant of any lease: a newer holder always has a larger fence. */
  readonly fence: number;
  /** Instance id of the holder (see instance-id.ts). */
  readonly owner: string;
  /** ms before the lease expires unless its holder renews it. */
  readonly ttlMs: number;
  /** What the holder published with setData, if anything. */
  readonly data: string | undefined;
}

export interface Lease {
  readonly key: string;
  readonly fence: number;
  readonly owner: string;
  /**
   * Aborted once the lease is known to be lost: a renewal found it expired and
   * taken by someone else. Not aborted while the backend is merely unreachable
   * (nobody else can be granted it through that backend either).
   */
  readonly lost: AbortSignal;
  /** Successful renewals so far. */
  readonly renewals: number;
  /** Publishes data with the lease (holder.data). Fenced: false, and nothing written, once the lease is not ours. */
  setData(data: string): Promise<boolean>;
  /** True while this lease is the current one for its key. */
  stillHeld(): Promise<boolean>;
  /** Compare-and-delete: removes the lease only if it is still ours; false otherwise. Stops renewal either way. */
  release(): Promise<boolean>;
}

export type Attempt = { readonly lease: Lease; readonly holder?: undefined } | { readonly lease?: undefined; readonly holder: LeaseHolder };

export interface AcquireOptions {
  /** Lease length in ms (default: the coordinator's). */
  readonly leaseMs?: number;
  /** Renew every leaseMs/3 until released (default true). */
  readonly renew?: boolean;
}

export interface Coordinator {
  /** "memory", "redis", or for the failover coordinator the one answering now. */
  readonly kind: string;
  /** True when answers are fleet-wide (another replica's lease is visible), false when they cover this process only. */
  readonly shared: boolean;
  /** This process's instance id, the owner of its leases. */
  readonly owner: string;
  /** Takes the lease on key if nobody holds it; otherwise says who does. */
  tryAcquire(key: string, opts?: AcquireOptions): Promise<Attempt>;
  holder(key: string): Promise<LeaseHolder | undefined>;
  /** Resolves true once key has no holder (released or expired), false when timeoutMs passes first. */
  waitFree(key: string, timeoutMs: number): Promise<boolean>;
  /** Best-effort message to every subscriber of topic (in this process, or in the fleet). */
  publish(topic: string, message: string): Promise<void>;
  /** Resolves once messages on topic reach listener; call the returned function to stop. */
  subscribe(topic: string, listener: (message: string) => void): Promise<() => void>;
  close(): Promise<void>;
}

/** How long a lease lasts without renewal when the caller does not say. */
export const DEFAULT_LEASE_MS = 10_000;

/** Lease keys, one namespace per kind of job. */
export const leaseKeys = {
  blob: (digest: string): string => `blob:${digest}`,
  manifestByDigest: (digest: string): string => `manifest:${digest}`,
  /** Host names carry no "/", repositories no ":", tags neither: the key is unambiguous. */
  manifestByTag: (upstream: string, repository: string, tag: string): string => `tag:${upstream}/${repository}:${tag}`,
} as const;
