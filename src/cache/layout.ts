// Where everything lives under dataDir. Content is addressed by digest; tag
// records by (upstream, repository, tag). Temp files share the filesystem with
// their final place so that publishing one is a rename.
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { Digest } from "../oci/digest.js";
import { INSTANCE_ID } from "../coordination/instance-id.js";

export interface TagKey {
  readonly upstream: string;
  readonly repository: string;
  readonly tag: string;
}

export class Layout {
  readonly root: string;
  readonly tmpDir: string;

  constructor(root: string) {
    this.root = root;
    this.tmpDir = join(root, "tmp");
  }

  blob(d: Digest): string {
    return join(this.root, "blobs", d.algorithm, d.hex.slice(0, 2), d.hex);
  }

  manifest(d: Digest): string {
    return join(this.root, "manifests", d.algorithm, d.hex.slice(0, 2), d.hex);
  }

  /** The private mark of a digest (see auth/private-index.ts): which routes it was fetched through with a client's token. */
  privateMark(d: Digest): string {
    return join(this.root, "private", d.algorithm, d.hex.slice(0, 2), `${d.hex}.json`);
  }

  /** Repository components never start with "_" (name grammar), so "_tags" cannot collide. */
  tag(k: TagKey): string {
    return join(this.root, "repositories", upstreamDir(k.upstream), ...k.repository.split("/"), "_tags", `${k.tag}.json`);
  }

  /**
   * A fresh temp path, "<kind>.<instance id>.<random>.tmp": the instance id
   * tells the sweeper whose it is (temp-sweeper.ts); a pid would not, with
   * replicas on several hosts sharing the directory.
   */
  temp(kind: string): string {
    return join(this.tmpDir, `${kind}.${INSTANCE_ID}.${randomBytes(6).toString("hex")}.tmp`);
  }
}

/** "localhost:5000" → "localhost_5000": a directory name on every filesystem. */
export function upstreamDir(host: string): string {
  return host.replace(/[^a-zA-Z0-9.-]/g, "_");
}
