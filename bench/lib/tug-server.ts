// tug as users run it: the built command (`node dist/cli.js serve --config
// FILE`) in a child process with a fresh data dir, on a free loopback port.
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { freePort } from "../../test/helpers/ports.js";
import { makeTempDir, removeTempDir, run, startDaemon, stopChild } from "../../test/helpers/process.js";

export const ROOT = resolve(import.meta.dirname, "..", "..");
const CLI = join(ROOT, "dist", "cli.js");

export interface RunningTug {
  readonly url: string;
  /** 127.0.0.1:PORT, for skopeo references. */
  readonly host: string;
  readonly pid: number;
  readonly dataDir: string;
  logs(): string;
  stop(): Promise<void>;
}

export interface TugServerOptions {
  /** The upstream registry's origin; it is the default upstream. */
  upstream: string;
  /** Write a V8 CPU profile (node --cpu-prof) into this dir when tug stops. */
  cpuProfDir?: string;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, name.name);
    newest = Math.max(newest, name.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Builds dist/ when it is missing or older than src/ (the bench measures the
 * built command). tsc emits even with type errors; those are reported, and
 * the bench goes on with what was emitted.
 */
export async function ensureBuilt(): Promise<string> {
  if (existsSync(CLI) && statSync(CLI).mtimeMs >= newestMtime(join(ROOT, "src"))) return "up to date";
  try {
    await run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(ROOT, "tsconfig.build.json")], { timeoutMs: 300_000 });
    return "built";
  } catch (err) {
    if (!existsSync(CLI)) throw err;
    return `built with type errors: ${(err as Error).message.split("\n").slice(1, 6).join(" ").trim()}`;
  }
}

export async function startTugServer(opts: TugServerOptions): Promise<RunningTug> {
  const dir = makeTempDir("bench-tug");
  const dataDir = join(dir, "data");
  const configPath = join(dir, "tug.yaml");
  const nodeArgs = opts.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`] : [];
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    // Everything else is tug's embedded default: what a user gets.
    writeFileSync(
      configPath,
      stringify({
        listen: `127.0.0.1:${port}`,
        dataDir,
        upstreams: { "upstream.bench": { url: opts.upstream, default: true } },
      }),
    );
    const url = `http://127.0.0.1:${port}`;
    try {
      const { child, logs } = await startDaemon("tug", process.execPath, [...nodeArgs, CLI, "serve", "--config", configPath], async () => {
        const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        return res.status === 200;
      });
      return {
        url,
        host: `127.0.0.1:${port}`,
        pid: child.pid!,
        dataDir,
        logs,
        stop: async () => {
          await stopChild(child, 10_000);
          await removeTempDir(dir);
        },
      };
    } catch (err) {
      if (attempt < 3 && err instanceof Error && err.message.includes("EADDRINUSE")) continue;
      await removeTempDir(dir);
      throw err;
    }
  }
}
