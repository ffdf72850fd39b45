// `tug prune`'s eviction: the cache's own Evictor opened over the data dir
// (it reads last accesses from the files' mtimes, which a running tug writes
// back), run once with the command's limits, and closed.
import { Evictor, type EvictionResult } from "../cache/evictor.js";
import { silentLogger } from "../observability/logger.js";
import type { PruneOutcome, Pruner } from "./prune-command.js";

export const evictorPruner: Pruner = async (dataDir, req, ctx) => {
  // Budget and watermarks at "never": opening must not start an eviction of its own.
  const evictor = await Evictor.open(dataDir, {
    maxSize: Number.MAX_SAFE_INTEGER,
    highWatermark: 1,
    lowWatermark: 1,
    logger: silentLogger(),
    now: () => ctx.now,
  });
  try {
    const runs: EvictionResult[] = [];
    const dryRun = req.dryRun;
    // Age first, then size: what is left after the age cut is what the size cut sees.
    if (req.olderThan !== undefined) runs.push(await evictor.evictOlderThan(req.olderThan, { dryRun }));
    if (req.maxSize !== undefined) runs.push(await evictor.evictTo(req.maxSize, { dryRun }));
    const sum = (f: (r: EvictionResult) => number): number => runs.reduce((n, r) => n + f(r), 0);
    const outcome: PruneOutcome = {
      removedBlobs: sum((r) => r.evictedBlobs),
      removedManifests: sum((r) => r.evictedManifests),
      removedBytes: sum((r) => r.evictedBytes),
      remainingBytes: Math.min(...runs.map((r) => r.usageBytes)),
    };
    return outcome;
  } finally {
    await evictor.close();
  }
};
