// V8 heap settings for a long-running tug. A cache that streams blobs
// allocates fast (a chunk object per socket read), so V8 grows its young
// generation to the default maximum (16 MiB per semi-space) and keeps it:
// ~30 MiB of resident memory that buys nothing here. The bench (issue 7)
// measured semi-spaces of 2 MiB at the same manifest and blob throughput,
// with peak RSS 10-30 MiB lower. An explicit --max-semi-space-size (on the
// command line or in NODE_OPTIONS) wins.
import { setFlagsFromString } from "node:v8";

/** MiB per semi-space (the young generation is a few of them). */
export const SEMI_SPACE_MIB = 2;

export function tuneHeap(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env["NODE_OPTIONS"] ?? ""): boolean {
  const chosen = (s: string): boolean => /--max[-_]semi[-_]space[-_]size/.test(s);
  if (execArgv.some(chosen) || chosen(nodeOptions)) return false;
  // V8 reads this flag each time it grows the young generation, so setting it
  // at start-up, before any real load, takes effect.
  setFlagsFromString(`--max-semi-space-size=${SEMI_SPACE_MIB}`);
  return true;
}
