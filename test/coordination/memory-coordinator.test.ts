// The in-process coordinator (one replica, or any replica while Redis is away) passes the shared suite.
import { MemoryCoordinator } from "../../src/coordination/memory-coordinator.js";
import { describeCoordinator } from "./coordinator-suite.js";

describeCoordinator("memory", async () => {
  const c = new MemoryCoordinator();
  return { a: c, b: c, close: () => c.close() };
});
