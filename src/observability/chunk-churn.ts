// A minor garbage collection after every few MiB of upstream chunks that
// fills have taken in.
//
// Each socket read of an upstream body is a fresh 64 KiB ArrayBuffer whose
// memory lives outside V8's heap. A blob fill allocates almost nothing else
// on the JavaScript heap, so V8's young generation rarely fills up and its
// cheap scavenges rarely run: the dead chunks pile up until V8's
// external-memory limit forces a full mark-compact. In the bench's cold pull
// of a 256 MiB layer that was ~30 MiB of dead chunks at each peak, and a
// mark-compact (~5 ms, plus ~8 ms of incremental marking) every ~130 ms of
// download. A minor collection every CHURN_GC_BYTES frees the chunks while
// they are still young, for 0.5–2 ms each on the bench machine with tug's
// small young generation (observability/heap-tuning.ts).
//
// CHURN_GC_BYTES must exceed what a fill keeps of its newest chunks
// (BlobFill's RECENT_WINDOW_BYTES): a chunk that is still held at two
// collections in a row is promoted to the old generation, and only a full
// collection frees it.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

export const CHURN_GC_BYTES = 8 << 20;

type MinorGc = () => void;

let takenIn = 0;
let minorGc: MinorGc | null | undefined;

/**
 * V8's gc() without starting node with --expose-gc: the flag, set now,
 * applies to contexts created after it, so a fresh context hands over its
 * gc function and the main context's globals stay untouched. null where V8
 * refuses (tug then simply leaves collection to V8).
 */
function loadMinorGc(): MinorGc | null {
  try {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as unknown;
    if (typeof gc !== "function") return null;
    return () => (gc as (opts: { type: "minor" }) => void)({ type: "minor" });
  } catch {
    return null;
  }
}

/** Fills have hashed and written `bytes` more of upstream chunks. */
export function noteUpstreamBytes(bytes: number): void {
  takenIn += bytes;
  if (takenIn < CHURN_GC_BYTES) return;
  takenIn = 0;
  minorGc ??= loadMinorGc();
  minorGc?.();
}
