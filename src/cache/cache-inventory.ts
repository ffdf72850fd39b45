// What a data directory holds, read straight from disk (no running tug needed):
// every tag record under repositories/, the manifests it leads to and the size
// of the cached blobs they name, plus the totals of blobs/ and manifests/.
// Read-only: safe next to a serving tug.
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { tryParseDigest } from "../oci/digest.js";
import { Layout } from "./layout.js";
import { parseTagRecord, type TagRecord } from "./tag-store.js";

export interface CachedTag {
  /** The upstream's directory name (its host, with ":" as "_"). */
  readonly upstream: string;
  readonly repository: string;
  readonly tag: string;
  readonly record: TagRecord;
  /** Platforms of an index whose manifests are cached, e.g. ["linux/amd64"]; [] for a plain image. */
  readonly platforms: string[];
  /** Blobs (config + layers) the cached manifests name, and how many of them are on disk. */
  readonly blobs: number;
  readonly blobsCached: number;
  /** Bytes on disk for this tag: its manifests plus the cached blobs they name (shared blobs count for each tag). */
  readonly bytes: number;
}

export interface Inventory {
  readonly root: string;
  readonly tags: CachedTag[];
  readonly totals: { readonly blobs: number; readonly blobBytes: number; readonly manifests: number; readonly manifestBytes: number };
}

/** Thrown when the directory is missing or not a tug data dir. */
export class InventoryError extends Error {}

async function dirEntries(dir: string): Promise<import("node:fs").Dirent[]> {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/** Walks blobs/ or manifests/ (<alg>/<2 hex>/<hex>): count and bytes. */
async function contentTotals(dir: string): Promise<{ count: number; bytes: number }> {
  let count = 0;
  let bytes = 0;
  for (const alg of await dirEntries(dir)) {
    if (!alg.isDirectory()) continue;
    for (const prefix of await dirEntries(join(dir, alg.name))) {
      if (!prefix.isDirectory()) continue;
      for (const f of await dirEntries(join(dir, alg.name, prefix.name))) {
        if (!f.isFile()) continue;
        const st = await stat(join(dir, alg.name, prefix.name, f.name)).catch(() => undefined);
        if (!st) continue;
        count++;
        bytes += st.size;
      }
    }
  }
  return { count, bytes };
}

/** Every (repository, tag JSON file) under one upstream's directory. */
async function tagFiles(dir: string, repo: string[], out: { repository: string; file: string; tag: string }[]): Promise<void> {
  for (const e of await dirEntries(dir)) {
    if (!e.isDirectory()) continue;
    if (e.name === "_tags") {
      for (const f of await dirEntries(join(dir, e.name))) {
        if (f.isFile() && f.name.endsWith(".json")) out.push({ repository: repo.join("/"), file: join(dir, e.name, f.name), tag: f.name.slice(0, -5) });
      }
    } else {
      await tagFiles(join(dir, e.name), [...repo, e.name], out);
    }
  }
}

interface ManifestOnDisk {
  readonly bytes: number;
  readonly json: { manifests?: { digest?: string; platform?: { os?: string; architecture?: string; variant?: string } }[]; config?: { digest?: string }; layers?: { digest?: string }[] };
}

export async function readInventory(root: string): Promise<Inventory> {
  const st = await stat(root).catch(() => undefined);
  if (!st?.isDirectory()) throw new InventoryError(`no data directory at ${root}`);
  const layout = new Layout(root);
  const manifestCache = new Map<string, ManifestOnDisk | undefined>();
  const blobSizes = new Map<string, number | undefined>();

  const manifest = async (digest: string | undefined): Promise<ManifestOnDisk | undefined> => {
    const d = digest !== undefined ? tryParseDigest(digest) : undefined;
    if (!d) return undefined;
    if (manifestCache.has(d.value)) return manifestCache.get(d.value);
    let found: ManifestOnDisk | undefined;
    try {
      const raw = await readFile(layout.manifest(d));
      // Stored as "<mediaType>\n<exact bytes>" (manifest-store.ts).
      const nl = raw.indexOf(0x0a);
      found = { bytes: raw.length - nl - 1, json: JSON.parse(raw.subarray(nl + 1).toString("utf8")) as ManifestOnDisk["json"] };
    } catch {
      found = undefined;
    }
    manifestCache.set(d.value, found);
    return found;
  };
  const blobSize = async (digest: string | undefined): Promise<number | undefined> => {
    const d = digest !== undefined ? tryParseDigest(digest) : undefined;
    if (!d) return undefined;
    if (!blobSizes.has(d.value)) blobSizes.set(d.value, (await stat(layout.blob(d)).catch(() => undefined))?.size);
    return blobSizes.get(d.value);
  };

  const tags: CachedTag[] = [];
  const reposDir = join(root, "repositories");
  for (const up of await dirEntries(reposDir)) {
    if (!up.isDirectory()) continue;
    const files: { repository: string; file: string; tag: string }[] = [];
    await tagFiles(join(reposDir, up.name), [], files);
    for (const f of files) {
      const record = parseTagRecord(await readFile(f.file, "utf8").catch(() => ""));
      if (!record) continue;
      const top = await manifest(record.digest);
      const images: ManifestOnDisk[] = [];
      const platforms: string[] = [];
      let bytes = top?.bytes ?? 0;
      if (top?.json.manifests) {
        for (const m of top.json.manifests) {
          const child = await manifest(m.digest);
          if (!child) continue;
          images.push(child);
          bytes += child.bytes;
          const p = m.platform;
          if (p?.os && p.architecture && p.os !== "unknown") platforms.push([p.os, p.architecture, p.variant].filter(Boolean).join("/"));
        }
      } else if (top) {
        images.push(top);
      }
      const digests = new Set<string>();
      for (const img of images) {
        if (img.json.config?.digest) digests.add(img.json.config.digest);
        for (const l of img.json.layers ?? []) if (l.digest) digests.add(l.digest);
      }
      let blobsCached = 0;
      for (const d of digests) {
        const size = await blobSize(d);
        if (size === undefined) continue;
        blobsCached++;
        bytes += size;
      }
      tags.push({ upstream: up.name, repository: f.repository, tag: f.tag, record, platforms, blobs: digests.size, blobsCached, bytes });
    }
  }
  tags.sort((a, b) => a.upstream.localeCompare(b.upstream) || a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
  const [blobs, manifests] = await Promise.all([contentTotals(join(root, "blobs")), contentTotals(join(root, "manifests"))]);
  return { root, tags, totals: { blobs: blobs.count, blobBytes: blobs.bytes, manifests: manifests.count, manifestBytes: manifests.bytes } };
}
