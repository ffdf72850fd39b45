// One job per key across the fleet, for jobs that end with their answer in the
// shared cache (a manifest fetched, a tag revalidated): take the key's lease
// and run the job; if another replica holds it, wait until it lets go and run
// the job then — the job first looks in the cache, so it finds the other
// replica's answer instead of asking the upstream again. Waiting is bounded:
// a stuck holder costs a duplicate fetch, never a failed pull.
import type { Coordinator } from "./coordinator.js";

export interface UnderLeaseOptions {
  /** Longest wait for other holders before running the job without the lease. */
  readonly maxWaitMs: number;
  /** Called each time the job waits on another holder (metrics). */
  readonly onWait?: () => void;
}

export async function underLease<V>(coordinator: Coordinator, key: string, job: () => Promise<V>, opts: UnderLeaseOptions): Promise<V> {
  const deadline = Date.now() + opts.maxWaitMs;
  for (;;) {
    const attempt = await coordinator.tryAcquire(key);
    if (attempt.lease) {
      const lease = attempt.lease;
      try {
        return await job();
      } finally {
        // A lease we could not release lapses by itself.
        await lease.release().catch(() => undefined);
      }
    }
    const left = deadline - Date.now();
    if (left <= 0) return job();
    opts.onWait?.();
    await coordinator.waitFree(key, left);
  }
}
