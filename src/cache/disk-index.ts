// What the disk budget knows about the cache: every committed blob and
// manifest file with its size and last access, kept in memory. Built at
// start-up by a directory walk that only stats (never rehashes: a file under
// blobs/ or manifests/ got there by a verified rename). Accesses are recorded
// in memory and written back in batches as the file's mtime (no fsync, no
// write per hit), so the LRU order survives restarts and a separate process
// (a prune command) can read it from the files themselves.
import { readdir, stat, utimes } from "node:fs/promises";
import { join } from "node:path";

export type EntryKind = "blob" | "manifest";

export interface IndexEntry {
  readonly path: string;
  readonly kind: EntryKind;
  readonly size: number;
  /** Epoch ms of the last access (the file's mtime at start-up). */
  lastAccess: number;
}

/** The content directories under dataDir, by kind. */
export const CONTENT_DIRS: Readonly<Record<EntryKind, string>> = { blob: "blobs", manifest: "manifests" };

export class DiskIndex {
  readonly #root: string;
  readonly #entries = new Map<string, IndexEntry>();
  readonly #dirty = new Set<string>();
  /** Touches that arrived before the walk found the file. */
  readonly #early = new Map<string, number>();
  #usage = 0;
  #ready = false;

  constructor(root: string) {
    this.#root = root;
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Bytes of committed content known to the index. */
  get usage(): number {
    return this.#usage;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(path: string): IndexEntry | undefined {
    return this.#entries.get(path);
  }

  entries(): IterableIterator<IndexEntry> {
    return this.#entries.values();
  }

  /** Walks blobs/ and manifests/ (stat only). Entries added meanwhile are kept as they are. */
  async build(): Promise<void> {
    for (const kind of ["blob", "manifest"] as const) {
      const top = join(this.#root, CONTENT_DIRS[kind]);
      for (const alg of await list(top)) {
        for (const prefix of await list(join(top, alg))) {
          const dir = join(top, alg, prefix);
          const names = await list(dir);
          const stats = await Promise.all(
            names.map(async (name) => {
              const path = join(dir, name);
              try {
                const st = await stat(path);
                return st.isFile() ? { path, size: st.size, mtime: st.mtimeMs } : undefined;
              } catch {
                return undefined; // removed meanwhile
              }
            }),
          );
          for (const s of stats) {
            if (!s || this.#entries.has(s.path)) continue;
            this.#put({ path: s.path, kind, size: s.size, lastAccess: Math.round(s.mtime) });
          }
        }
      }
    }
    for (const [path, at] of this.#early) {
      const e = this.#entries.get(path);
      if (e && at > e.lastAccess) {
        e.lastAccess = at;
        this.#dirty.add(path);
      }
    }
    this.#early.clear();
    this.#ready = true;
  }

  /** Records an access (memory only; flush() writes it back later). */
  touch(path: string, now: number): void {
    const e = this.#entries.get(path);
    if (e) {
      if (now > e.lastAccess) e.lastAccess = now;
      this.#dirty.add(path);
    } else if (!this.#ready) {
      this.#early.set(path, now);
    }
  }

  /** A committed file (new, or rewritten with the same content). */
  add(path: string, kind: EntryKind, size: number, now: number): void {
    this.remove(path);
    this.#put({ path, kind, size, lastAccess: now });
  }

  /** Forgets a file (evicted, or found missing). */
  remove(path: string): IndexEntry | undefined {
    const e = this.#entries.get(path);
    if (!e) return undefined;
    this.#entries.delete(path);
    this.#dirty.delete(path);
    this.#usage -= e.size;
    return e;
  }

  /** Writes recorded accesses back as mtimes, a few at a time. */
  async flush(): Promise<number> {
    const batch = [...this.#dirty];
    this.#dirty.clear();
    let written = 0;
    for (let i = 0; i < batch.length; i += 32) {
      await Promise.all(
        batch.slice(i, i + 32).map(async (path) => {
          const e = this.#entries.get(path);
          if (!e) return;
          const t = e.lastAccess / 1000;
          try {
            await utimes(path, t, t);
            written++;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === "ENOENT") this.remove(path);
          }
        }),
      );
    }
    return written;
  }

  #put(e: IndexEntry): void {
    this.#entries.set(e.path, e);
    this.#usage += e.size;
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}
