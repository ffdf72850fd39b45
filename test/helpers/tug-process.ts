// A real tug in a child process (src/cli.ts under tsx), for tests that must
// kill it (SIGKILL, SIGTERM), measure its RSS, or run it inside a private
// mount namespace with a small tmpfs as its data dir (ENOSPC). It listens on
// a free loopback port and is ready when /healthz answers.
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { freePort } from "./ports.js";
import { makeTempDir, requireBinary, spawnTied, tailBuffer, waitUntil } from "./process.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(REPO, "src", "cli.ts");

export interface TugChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly port: number;
  /** Parsed JSON log lines so far (the last 5000). */
  lines(): Array<Record<string, unknown>>;
  logs(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resident set size now, and its peak (VmHWM), in bytes. */
  rss(): { rss: number; peak: number };
}

export interface SpawnTugOptions {
  readonly dataDir: string;
  /** Merged over the YAML config (listen, dataDir and log level info are set). */
  readonly config: Record<string, unknown>;
  /** Mount a tmpfs of this size (e.g. "4m") over dataDir in a private mount namespace (needs root + unshare). */
  readonly tmpfsSize?: string;
}

export async function spawnTug(opts: SpawnTugOptions): Promise<TugChild> {
  const dir = makeTempDir("tug-config");
  const file = join(dir, "tug.yaml");
  const port = await freePort();
  writeFileSync(file, stringify({ listen: `127.0.0.1:${port}`, dataDir: opts.dataDir, log: { level: "info" }, ...opts.config }));
  const node = [process.execPath, "--import", "tsx", CLI, "serve", "--config", file];
  let bin: string;
  let args: string[];
  if (opts.tmpfsSize !== undefined) {
    bin = requireBinary("unshare");
    // exec keeps one pid: setpriv → unshare → sh → node, each replacing the last.
    const script = `mount -t tmpfs -o size=${opts.tmpfsSize} tug-test "$0" && exec "$@"`;
    args = ["--mount", "--propagation", "private", "--", "sh", "-c", script, opts.dataDir, ...node];
  } else {
    [bin, args] = [node[0]!, node.slice(1)];
  }
  const out = tailBuffer(200_000);
  let pending = "";
  const parsed: Array<Record<string, unknown>> = [];
  const child = spawnTied(bin, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env["PATH"], HOME: process.env["HOME"] } });
  child.stdout?.on("data", (c: Buffer) => {
    out.push(c);
    pending += c.toString();
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    for (const line of parts) {
      try {
        parsed.push(JSON.parse(line) as Record<string, unknown>);
        if (parsed.length > 5000) parsed.shift();
      } catch {
        // not a log line
      }
    }
  });
  child.stderr?.on("data", out.push);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  await waitUntil(
    "tug child serving",
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return res.status === 200;
    },
    { child, logs: out.text, timeoutMs: 30_000 },
  );
  const pid = child.pid!;
  return {
    child,
    pid,
    port,
    url: `http://127.0.0.1:${port}`,
    lines: () => parsed,
    logs: out.text,
    exited,
    rss() {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
      return { rss: kb("VmRSS"), peak: kb("VmHWM") };
    },
  };
}
