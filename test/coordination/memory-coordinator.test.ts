// The in-process coordinator (one replica, or any replica while Redis is away) passes the shared suite.
import { describe, expect, it } from "vitest";
import { MemoryCoordinator } from "../../src/coordination/memory-coordinator.js";
import { describeCoordinator } from "./coordinator-suite.js";

describeCoordinator("memory", async () => {
  const c = new MemoryCoordinator();
  return { a: c, b: c, close: () => c.close() };
});

describe("memory coordinator's scope", () => {
  it("says it is process-local, and two instances never see each other's leases", async () => {
    const a = new MemoryCoordinator();
    const b = new MemoryCoordinator();
    try {
      expect(a.shared).toBe(false);
      expect(a.kind).toBe("memory");
      const first = await a.tryAcquire("blob:x");
      expect(first.lease).toBeDefined();
      expect(await b.holder("blob:x")).toBeUndefined();
      const other = await b.tryAcquire("blob:x");
      expect(other.lease).toBeDefined();
      await first.lease!.release();
      await other.lease!.release();
    } finally {
      await a.close();
      await b.close();
    }
  });
});
