// This process's identity among the replicas sharing a data directory and a
// Redis: the owner of its leases and of its temp files. A pid alone is not
// one — replicas on several hosts share one volume and pids repeat across
// hosts and restarts — so a random part makes it unique; the pid stays in it
// for whoever reads a lease or a temp file name while debugging.
import { randomBytes } from "node:crypto";

/** "<pid>-<12 hex>"; no "." (temp file names use "." as their separator). */
export const INSTANCE_ID = `${process.pid}-${randomBytes(6).toString("hex")}`;

const INSTANCE_RE = /^\d+-[0-9a-f]{12}$/;

export function isInstanceId(s: string): boolean {
  return INSTANCE_RE.test(s);
}
