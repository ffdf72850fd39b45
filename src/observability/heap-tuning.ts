// V8 heap settings for a long-running tug. A cache that streams blobs
// allocates fast (a chunk object per socket read, a few small objects per
// request), so V8 keeps doubling its young generation up to the default
// maximum (two 16 MiB semi-spaces) and keeps it: ~35-40 MiB of resident memory.
// Holding the young generation at its start size costs a cached manifest
// request up to ~9% more CPU (more, cheaper scavenges; within the noise of
// most runs) and nothing measurable on blobs; the bench (issue 7) measured
// RSS 20-40 MiB lower after its manifest and blob runs. A cache pod's memory
// limit matters more than that CPU, so tug holds it, unless the operator sized
// the young generation themselves (NODE_OPTIONS=--max-semi-space-size=16 gives
// V8's default back).
import { setFlagsFromString } from "node:v8";

const YOUNG_GENERATION_FLAG = /--(?:max|min)[-_]semi[-_]space[-_]size|--semi[-_]space[-_]growth[-_]factor/;

/**
 * Stops the young generation from growing past its start size. Must run
 * early: V8 reads the growth factor each time it would grow the space, but
 * never shrinks a space that has already grown. Returns whether it applied.
 */
export function tuneHeap(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env["NODE_OPTIONS"] ?? ""): boolean {
  if (execArgv.some((a) => YOUNG_GENERATION_FLAG.test(a)) || YOUNG_GENERATION_FLAG.test(nodeOptions)) return false;
  setFlagsFromString("--semi-space-growth-factor=1");
  return true;
}

const WASM_TIER_FLAG = /--(?:no-)?(?:liftoff|wasm[-_](?:tier[-_]up|dynamic[-_]tiering))/;

/**
 * Keeps WebAssembly on V8's baseline compiler (Liftoff). tug's only
 * WebAssembly is undici's HTTP parser, llhttp. Once a download makes it hot,
 * V8 recompiles it with TurboFan on a background thread, and its register
 * allocator holds ~36 MiB of compiler zones while it runs. That is the single
 * largest jump in resident memory during a cold pull (issue 7, seen with
 * `strace -k` on the arena growth), and it counts against a pod's limit even
 * though it is freed after. llhttp skips a body's bytes without looking at
 * them, so the optimised code buys nothing measurable on blob downloads. Must
 * run before undici compiles llhttp (its first connection). Skipped when the
 * operator chose a WebAssembly tier; returns whether it applied.
 */
export function tuneWasm(execArgv: readonly string[] = process.execArgv, nodeOptions: string = process.env["NODE_OPTIONS"] ?? ""): boolean {
  if (execArgv.some((a) => WASM_TIER_FLAG.test(a)) || WASM_TIER_FLAG.test(nodeOptions)) return false;
  setFlagsFromString("--liftoff-only");
  return true;
}
