// Manifests by digest: exact upstream bytes plus their media type, on disk
// (one file: "<mediaType>\n<bytes>") with an in-memory LRU in front so hot
// manifests never touch the disk.
import { readFile } from "node:fs/promises";
import { LRUCache } from "lru-cache";
import type { Digest } from "../oci/digest.js";
import { writeFileAtomic } from "./atomic-file.js";
import type { Layout } from "./layout.js";
import type { DiskBudget } from "./evictor.js";

export interface StoredManifest {
  readonly digest: string;
  readonly mediaType: string;
  readonly bytes: Buffer;
}

export class ManifestStore {
  readonly #layout: Layout;
  readonly #memory: LRUCache<string, StoredManifest>;

  readonly #budget: DiskBudget | undefined;

  constructor(layout: Layout, opts: { memoryBytes: number; budget?: DiskBudget }) {
    this.#layout = layout;
    this.#budget = opts.budget;
    this.#memory = new LRUCache<string, StoredManifest>({
      maxSize: Math.max(opts.memoryBytes, 1),
      sizeCalculation: (m) => m.bytes.length + m.mediaType.length + 200,
    });
  }

  /** From memory, else from disk (then kept in memory); undefined when not cached. */
  async get(d: Digest): Promise<StoredManifest | undefined> {
    const path = this.#layout.manifest(d);
    // Recorded for the disk budget's LRU even when memory answers (cheap: a map update).
    this.#budget?.touch(path);
    const hit = this.#memory.get(d.value);
    if (hit) return hit;
    let raw: Buffer;
    try {
      raw = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        this.#budget?.forget(path);
        return undefined;
      }
      throw err;
    }
    const nl = raw.indexOf(0x0a);
    if (nl <= 0) return undefined;
    const m: StoredManifest = { digest: d.value, mediaType: raw.subarray(0, nl).toString("utf8"), bytes: raw.subarray(nl + 1) };
    this.#memory.set(d.value, m);
    return m;
  }

  /** The caller has verified that bytes hash to d. */
  async put(d: Digest, mediaType: string, bytes: Buffer): Promise<StoredManifest> {
    const m: StoredManifest = { digest: d.value, mediaType, bytes };
    const file = Buffer.concat([Buffer.from(mediaType.replace(/[\r\n]/g, "") + "\n"), bytes]);
    try {
      await writeFileAtomic(this.#layout.manifest(d), file, this.#layout.temp("manifest"));
      this.#budget?.added(this.#layout.manifest(d), "manifest", file.length);
    } catch (err) {
      // Disk full: the client still gets the manifest (from memory), room is made, nothing partial stays.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOSPC" && code !== "EDQUOT") throw err;
      this.#budget?.noSpace(file.length);
    }
    this.#memory.set(d.value, m);
    return m;
  }
}
