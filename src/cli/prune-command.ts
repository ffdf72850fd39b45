// `tug prune --max-size SIZE | --older-than DURATION [--dry-run] [--data-dir DIR | --config FILE]`:
// evicts now, least recently used first. The eviction itself is the cache's
// (src/cache/); this file parses the request and reports the outcome.
import type { Config } from "../config/index.js";
import { formatDuration, parseDuration, parseSize } from "../config/index.js";
import { UsageError, parseCommandLine } from "./args.js";
import type { CliIo } from "./cli-io.js";
import { chooseDataDir } from "./data-dir.js";
import { humanBytes } from "./format.js";

export const PRUNE_USAGE = "tug prune (--max-size SIZE | --older-than DURATION) [--dry-run] [--data-dir DIR | --config FILE]";

export interface PruneRequest {
  /** Evict least recently used content until the cache holds at most this many bytes. */
  readonly maxSize: number | undefined;
  /** Evict content not used for this many ms. */
  readonly olderThan: number | undefined;
  /** Report what would go, remove nothing. */
  readonly dryRun: boolean;
}

export interface PruneOutcome {
  readonly removedBlobs: number;
  readonly removedManifests: number;
  readonly removedBytes: number;
  /** Bytes of cached content left. */
  readonly remainingBytes: number;
}

/** Runs an eviction on a data directory. */
export type Pruner = (dataDir: string, req: PruneRequest, ctx: { readonly config: Config | undefined; readonly now: number }) => Promise<PruneOutcome>;

export function parsePruneArgs(args: string[], env: NodeJS.ProcessEnv): { dataDir: string; config: Config | undefined; request: PruneRequest } {
  const { values } = parseCommandLine<{ "max-size"?: string; "older-than"?: string; "dry-run"?: boolean; "data-dir"?: string; config?: string }>("prune", args, {
    "max-size": { type: "string" },
    "older-than": { type: "string" },
    "dry-run": { type: "boolean", short: "n" },
    "data-dir": { type: "string", short: "d" },
    config: { type: "string", short: "c" },
  });
  const maxSizeText = values["max-size"];
  const olderThanText = values["older-than"];
  if (maxSizeText === undefined && olderThanText === undefined) {
    throw new UsageError(`prune: say what to evict with --max-size SIZE (e.g. 20GiB) and/or --older-than DURATION (e.g. 30d)`);
  }
  const convert = (flag: string, text: string | undefined, parse: (s: string) => number): number | undefined => {
    if (text === undefined) return undefined;
    try {
      return parse(text);
    } catch (err) {
      throw new UsageError(`prune: ${flag}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  const maxSize = convert("--max-size", maxSizeText, parseSize);
  const olderThan = convert("--older-than", olderThanText, parseDuration);
  if (olderThan === 0) throw new UsageError("prune: --older-than: must be greater than 0 (0 would evict everything; use --max-size 0 for that)");
  const { dataDir, config } = chooseDataDir(values, env);
  return { dataDir, config, request: { maxSize, olderThan, dryRun: values["dry-run"] === true } };
}

export async function pruneCommand(args: string[], io: CliIo, pruner: Pruner | undefined): Promise<number> {
  const { dataDir, config, request } = parsePruneArgs(args, io.env);
  if (pruner === undefined) {
    io.stderr.write("tug: prune: eviction is not available in this build (no cache evictor in src/cache yet)\n");
    return 1;
  }
  const now = (io.now ?? Date.now)();
  const r = await pruner(dataDir, request, { config, now });
  const what = [
    request.maxSize !== undefined ? `down to ${humanBytes(request.maxSize)}` : undefined,
    request.olderThan !== undefined ? `unused for ${formatDuration(request.olderThan)}` : undefined,
  ].filter(Boolean).join(", ");
  const verb = request.dryRun ? "would remove" : "removed";
  io.stdout.write(`${verb} ${r.removedBlobs} blobs and ${r.removedManifests} manifests (${humanBytes(r.removedBytes)}) ${what}; ${humanBytes(r.remainingBytes)} ${request.dryRun ? "would remain" : "remain"} in ${dataDir}\n`);
  return 0;
}
