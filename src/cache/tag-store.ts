// Tag records: which digest a tag pointed to and when that was last confirmed
// upstream. Freshness is data (fetchedAt); a pure function judges it.
import { readFile } from "node:fs/promises";
import { LRUCache } from "lru-cache";
import { writeFileAtomic } from "./atomic-file.js";
import type { Layout, TagKey } from "./layout.js";

export interface TagRecord {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** Epoch ms of the last upstream confirmation. */
  readonly fetchedAt: number;
}

export type Freshness = "fresh" | "stale" | "expired";

/**
 * fresh: serve with no upstream contact. stale: revalidate, but may be served if
 * the upstream fails. expired: too old even to serve on upstream failure.
 */
export function tagFreshness(rec: TagRecord, now: number, tagTTL: number, staleIfError: number): Freshness {
  const age = now - rec.fetchedAt;
  if (age < tagTTL && age >= 0) return "fresh";
  if (age < tagTTL + staleIfError) return "stale";
  return "expired";
}

export interface TagStore {
  get(key: TagKey): Promise<TagRecord | undefined>;
  put(key: TagKey, rec: TagRecord): Promise<void>;
}

function memoryKey(k: TagKey): string {
  return `${k.upstream}\n${k.repository}\n${k.tag}`;
}

/** Tag records on disk (JSON, written atomically) behind an in-memory LRU. */
export class DiskTagStore implements TagStore {
  readonly #layout: Layout;
  readonly #memory = new LRUCache<string, TagRecord>({ max: 50_000 });

  constructor(layout: Layout) {
    this.#layout = layout;
  }

  async get(key: TagKey): Promise<TagRecord | undefined> {
    const mk = memoryKey(key);
    const hit = this.#memory.get(mk);
    if (hit) return hit;
    let text: string;
    try {
      text = await readFile(this.#layout.tag(key), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    const rec = parseTagRecord(text);
    if (rec) this.#memory.set(mk, rec);
    return rec;
  }

  async put(key: TagKey, rec: TagRecord): Promise<void> {
    try {
      await writeFileAtomic(this.#layout.tag(key), JSON.stringify(rec), this.#layout.temp("tag"));
    } catch (err) {
      // Disk full: the record lives in memory until it can be written; a pull never fails for it.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOSPC" && code !== "EDQUOT") throw err;
    }
    this.#memory.set(memoryKey(key), rec);
  }
}

export function parseTagRecord(text: string): TagRecord | undefined {
  try {
    const r = JSON.parse(text) as Partial<TagRecord>;
    if (typeof r.digest === "string" && typeof r.mediaType === "string" && typeof r.size === "number" && typeof r.fetchedAt === "number") {
      return { digest: r.digest, mediaType: r.mediaType, size: r.size, fetchedAt: r.fetchedAt };
    }
  } catch {
    // a damaged record is a miss, never an error
  }
  return undefined;
}
