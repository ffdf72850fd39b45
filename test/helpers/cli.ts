// Runs tug's CLI in-process with captured output (runCli + a fake CliIo), and
// as the real bin in a child process.
import { fileURLToPath } from "node:url";
import type { CliIo } from "../../src/cli/cli-io.js";
import { runCli, type RunCliOptions } from "../../src/cli/run-cli.js";
import { spawnTied } from "./process.js";

export interface Captured {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CaptureOptions {
  readonly tty?: boolean;
  readonly columns?: number;
  readonly env?: NodeJS.ProcessEnv;
  readonly now?: () => number;
}

/** A CliIo whose output is kept in strings. */
export function captureIo(opts: CaptureOptions = {}): { io: CliIo; stdout: () => string; stderr: () => string } {
  let out = "";
  let err = "";
  const tty = opts.tty === true ? { isTTY: true, columns: opts.columns ?? 100 } : {};
  const io: CliIo = {
    stdout: { write: (s: string) => (out += s), ...tty },
    stderr: { write: (s: string) => (err += s), ...tty },
    env: opts.env ?? {},
    ...(opts.now ? { now: opts.now } : {}),
  };
  return { io, stdout: () => out, stderr: () => err };
}

export async function tug(argv: string[], opts: CaptureOptions & RunCliOptions = {}): Promise<Captured> {
  const { io, stdout, stderr } = captureIo(opts);
  const code = await runCli(argv, io, opts.pruner ? { pruner: opts.pruner } : {});
  return { code, stdout: stdout(), stderr: stderr() };
}

export const CLI_ENTRY = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

/** The real bin (src/cli.ts under tsx) in a child process; resolves with its exit code and output. */
export function tugProcess(argv: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Captured> {
  return new Promise((resolve, reject) => {
    const child = spawnTied(process.execPath, ["--import", "tsx", CLI_ENTRY, ...argv], {
      env: { PATH: process.env["PATH"], HOME: process.env["HOME"], ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`tug ${argv.join(" ")} did not exit within ${opts.timeoutMs ?? 20_000} ms\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}
