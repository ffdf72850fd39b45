// The reference: Debian's docker-registry (CNCF distribution 2.8) in
// pull-through proxy mode, started with the same helper the integration tests
// use for their upstream, and measured directly (its counting front is unused).
import { join } from "node:path";
import { startRegistry } from "../../test/helpers/registry.js";
import { findPidByCmdline } from "./proc-stats.js";

export interface RunningReference {
  readonly url: string;
  readonly host: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export async function startReference(upstream: string): Promise<RunningReference> {
  const registry = await startRegistry({ extraConfig: { proxy: { remoteurl: upstream } } });
  const pid = findPidByCmdline(join(registry.dir, "config.yml"));
  if (pid === undefined) {
    await registry.stop();
    throw new Error("reference registry: could not find its process");
  }
  const url = registry.directUrl;
  return { url, host: new URL(url).host, pid, stop: () => registry.stop() };
}
