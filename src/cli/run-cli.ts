// The tug command's dispatcher: `tug serve | warm | ls | prune | help`. Returns
// the exit status (0 ok, 1 the work failed, 2 a bad command line, printed as
// one line); the bin (src/cli.ts) wires the process.
import { UsageError } from "./args.js";
import type { CliIo } from "./cli-io.js";
import { evictorPruner } from "./evictor-pruner.js";
import { LS_USAGE, lsCommand } from "./ls-command.js";
import { PRUNE_USAGE, pruneCommand, type Pruner } from "./prune-command.js";
import { SERVE_USAGE, serveCommand } from "./serve-command.js";
import { WARM_USAGE, warmCommand } from "./warm-command.js";

export const USAGE = [
  "usage:",
  `  ${SERVE_USAGE}`,
  "      serve the cache (what `npm start` runs)",
  `  ${WARM_USAGE}`,
  "      pre-pull images into a running tug (default --server http://127.0.0.1:5000)",
  `  ${LS_USAGE}`,
  "      list cached repositories, tags and sizes",
  `  ${PRUNE_USAGE}`,
  "      evict cached content now, least recently used first",
].join("\n");

export interface RunCliOptions {
  /** The eviction `tug prune` runs (default: the cache's Evictor). */
  readonly pruner?: Pruner;
}

export async function runCli(argv: readonly string[], io: CliIo, opts: RunCliOptions = {}): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === "help" || command === "--help" || command === "-h") {
      (command === undefined ? io.stderr : io.stdout).write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    }
    if (rest.includes("--help") || rest.includes("-h")) {
      const usage = { serve: SERVE_USAGE, warm: WARM_USAGE, ls: LS_USAGE, prune: PRUNE_USAGE }[command];
      if (usage !== undefined) {
        io.stdout.write(`usage: ${usage}\n`);
        return 0;
      }
    }
    switch (command) {
      case "serve":
        return await serveCommand(rest, io);
      case "warm":
        return await warmCommand(rest, io);
      case "ls":
        return await lsCommand(rest, io);
      case "prune":
        return await pruneCommand(rest, io, opts.pruner ?? evictorPruner);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)} (commands: serve, warm, ls, prune; see tug --help)`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`tug: ${err.message}\n`);
      return 2;
    }
    io.stderr.write(`tug: ${command ?? ""}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
