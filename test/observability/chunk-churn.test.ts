// Upstream chunks are freed by a minor collection every CHURN_GC_BYTES that
// fills take in, instead of piling up until V8's external-memory limit forces
// a full collection (issue 7: the largest part of a cold pull's peak RSS).
import { PerformanceObserver, constants } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { RECENT_WINDOW_BYTES } from "../../src/cache/blob-fill.js";
import { CHURN_GC_BYTES, noteUpstreamBytes } from "../../src/observability/chunk-churn.js";

const CHUNK = 64 * 1024;
const arrayBuffers = (): number => process.memoryUsage().arrayBuffers;
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Allocates and drops CHURN_GC_BYTES of socket-read-sized buffers, telling chunk-churn about each. */
function churn(): void {
  for (let n = 0; n < CHURN_GC_BYTES; n += CHUNK) {
    Buffer.allocUnsafeSlow(CHUNK).fill(n & 0xff);
    noteUpstreamBytes(CHUNK);
  }
}

describe("chunk churn", () => {
  it("runs a minor collection once CHURN_GC_BYTES of chunks have come in, which frees the dead ones", async () => {
    const minors: number[] = [];
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) minors.push(e.startTime);
    });
    obs.observe({ entryTypes: ["gc"] });
    try {
      const before = arrayBuffers();
      churn();
      churn();
      // Two thresholds crossed: at least two minor collections (V8 may add its own).
      // GC entries are delivered asynchronously, and the collections' ArrayBuffer
      // sweep finishes on a helper thread: give both a bounded number of turns.
      for (let i = 0; i < 10_000 && (minors.length < 2 || arrayBuffers() - before > CHURN_GC_BYTES / 2); i++) await turn();
      expect(minors.length).toBeGreaterThanOrEqual(2);
      expect(arrayBuffers() - before).toBeLessThanOrEqual(CHURN_GC_BYTES / 2);
    } finally {
      obs.disconnect();
    }
  });

  it("collects less often than a fill's window of recent chunks turns over (else the window's chunks get promoted)", () => {
    expect(CHURN_GC_BYTES).toBeGreaterThan(RECENT_WINDOW_BYTES);
  });
});
