// `tug ls [--data-dir DIR | --config FILE] [--json] [FILTER...]`: the cached
// repositories and tags, what each takes on disk, and the cache's totals.
import { InventoryError, readInventory, type CachedTag } from "../cache/cache-inventory.js";
import { parseCommandLine } from "./args.js";
import type { CliIo } from "./cli-io.js";
import { chooseDataDir, upstreamNames } from "./data-dir.js";
import { columns, humanAge, humanBytes } from "./format.js";

export const LS_USAGE = "tug ls [--data-dir DIR | --config FILE] [--json] [FILTER...]";

export async function lsCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine<{ "data-dir"?: string; config?: string; json?: boolean }>(
    "ls",
    args,
    { "data-dir": { type: "string", short: "d" }, config: { type: "string", short: "c" }, json: { type: "boolean" } },
    { positionals: true },
  );
  const { dataDir, config } = chooseDataDir(values, io.env);
  let inventory;
  try {
    inventory = await readInventory(dataDir);
  } catch (err) {
    if (err instanceof InventoryError) {
      io.stderr.write(`tug: ls: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const names = upstreamNames(config);
  const named = (t: CachedTag): string => `${names.get(t.upstream) ?? t.upstream}/${t.repository}`;
  const tags = inventory.tags.filter((t) => positionals.length === 0 || positionals.some((f) => `${named(t)}:${t.tag}`.includes(f)));
  const now = (io.now ?? Date.now)();

  if (values.json) {
    const out = {
      dataDir: inventory.root,
      tags: tags.map((t) => ({
        repository: named(t),
        tag: t.tag,
        digest: t.record.digest,
        mediaType: t.record.mediaType,
        platforms: t.platforms,
        blobs: t.blobs,
        blobsCached: t.blobsCached,
        bytes: t.bytes,
        checkedAt: new Date(t.record.fetchedAt).toISOString(),
      })),
      totals: inventory.totals,
    };
    io.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }

  if (tags.length === 0) {
    io.stdout.write(positionals.length > 0 ? `nothing cached matches ${positionals.join(" ")} in ${inventory.root}\n` : `nothing cached yet in ${inventory.root}\n`);
  } else {
    const rows = [["REPOSITORY", "TAG", "DIGEST", "PLATFORMS", "BLOBS", "SIZE", "CHECKED"]];
    for (const t of tags) {
      rows.push([
        named(t),
        t.tag,
        t.record.digest.slice(0, 19),
        t.platforms.length > 0 ? t.platforms.join(",") : "-",
        `${t.blobsCached}/${t.blobs}`,
        humanBytes(t.bytes),
        `${humanAge(now - t.record.fetchedAt)} ago`,
      ]);
    }
    for (const line of columns(rows)) io.stdout.write(`${line}\n`);
  }
  const repos = new Set(tags.map(named)).size;
  const t = inventory.totals;
  io.stdout.write(
    `${repos} repositor${repos === 1 ? "y" : "ies"}, ${tags.length} tag${tags.length === 1 ? "" : "s"}; on disk: ${t.blobs} blobs (${humanBytes(t.blobBytes)}), ${t.manifests} manifests (${humanBytes(t.manifestBytes)})\n`,
  );
  return 0;
}
