// Child processes and temp dirs for integration tests that never outlive the
// test process: children are tied to it with PR_SET_PDEATHSIG (setpriv) and
// killed on exit/SIGTERM, temp dirs are removed then too. vitest ends its fork
// workers with SIGTERM, which skips "exit" handlers unless someone listens.
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { accessSync, constants, mkdtempSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

// ---------------------------------------------------------------- teardown

const teardowns = new Set<() => void>();
let hooksInstalled = false;

function runTeardowns(): void {
  for (const fn of teardowns) {
    try {
      fn();
    } catch {
      // best effort: the process is going away
    }
  }
  teardowns.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.once("exit", runTeardowns);
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    const handler = () => {
      runTeardowns();
      process.removeListener(signal, handler);
      // Keep the default behaviour (die by the signal) unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, handler);
  }
}

/** Registers a synchronous cleanup run at process exit, SIGTERM or SIGINT. Returns an unregister function. */
export function onTeardown(fn: () => void): () => void {
  installHooks();
  teardowns.add(fn);
  return () => teardowns.delete(fn);
}

// ---------------------------------------------------------------- temp dirs

const tempDirs = new Map<string, () => void>();

/** A fresh temp dir (`/tmp/tug-<prefix>-XXXXXX`), removed at process end unless removed earlier. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tug-${prefix}-`));
  const unregister = onTeardown(() => rmSync(dir, { recursive: true, force: true }));
  tempDirs.set(dir, unregister);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  tempDirs.get(dir)?.();
  tempDirs.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------- binaries

const INSTALL_HINTS: Record<string, string> = {
  "docker-registry": "apt-get install docker-registry",
  skopeo: "apt-get install skopeo",
  podman: "apt-get install podman",
  containerd: "apt-get install containerd",
  ctr: "apt-get install containerd",
  "redis-server": "apt-get install redis-server",
  kubectl: "apt-get install kubernetes-client",
};

export function findBinary(name: string): string | undefined {
  for (const dir of (process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** Absolute path of a binary, or an Error with the one-line install instruction. */
export function requireBinary(name: string): string {
  const found = findBinary(name);
  if (found !== undefined) return found;
  throw new Error(`${name} not found on PATH: install it with \`${INSTALL_HINTS[name] ?? `apt-get install ${name}`}\``);
}

// ---------------------------------------------------------------- children

const setpriv = findBinary("setpriv");

/**
 * Spawns a child that dies with this process: SIGKILL by the kernel if we die
 * (setpriv --pdeathsig, which execs in place, so the pid is the child's), and
 * SIGKILL from our teardown hooks on exit / SIGTERM.
 */
export function spawnTied(bin: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child =
    setpriv !== undefined
      ? spawn(setpriv, ["--pdeathsig", "KILL", "--", bin, ...args], options)
      : spawn(bin, args, options);
  const unregister = onTeardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  child.once("exit", unregister);
  child.once("error", unregister);
  return child;
}

/** SIGTERM, then SIGKILL if the child has not exited within graceMs. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Keeps the last `max` characters of a stream, for error messages. */
export function tailBuffer(max = 16_000): { push(chunk: Buffer | string): void; text(): string } {
  let text = "";
  return {
    push(chunk) {
      text += chunk.toString();
      if (text.length > max) text = text.slice(-max);
    },
    text: () => text,
  };
}

/**
 * Polls `probe` with quick attempts until it returns true, the child exits, or
 * the deadline passes. Pauses between attempts grow from 5 to 100 ms so a
 * refused connection does not become a busy loop.
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean> | boolean,
  opts: { timeoutMs?: number; child?: ChildProcess; logs?: () => string } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const { child } = opts;
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`${what}: process exited (${child.exitCode ?? child.signalCode})\n${opts.logs?.() ?? ""}`);
    }
    if (await Promise.resolve().then(probe).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms\n${opts.logs?.() ?? ""}`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(5 * 2 ** attempt, 100)));
  }
}

/**
 * Starts a long-running child and waits for `ready`; on failure the child is
 * stopped and the error carries its recent output.
 */
export async function startDaemon(
  what: string,
  bin: string,
  args: string[],
  ready: () => Promise<boolean> | boolean,
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<{ child: ChildProcess; logs: () => string }> {
  const output = tailBuffer();
  const child = spawnTied(bin, args, { stdio: ["ignore", "pipe", "pipe"], ...(opts.env ? { env: opts.env } : {}) });
  child.stdout?.on("data", output.push);
  child.stderr?.on("data", output.push);
  const spawnError = new Promise<never>((_, reject) => child.once("error", reject));
  spawnError.catch(() => {});
  try {
    await Promise.race([
      spawnError,
      waitUntil(what, ready, { child, logs: output.text, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) }),
    ]);
  } catch (err) {
    await stopChild(child);
    throw err;
  }
  return { child, logs: output.text };
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; a non-zero exit throws with the command line and stderr. */
export function run(
  bin: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTied(bin, args, { env: opts.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    const stderr = tailBuffer(32_000);
    child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on("data", stderr.push);
    const timeoutMs = opts.timeoutMs ?? 120_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    const command = `${bin} ${args.join(" ")}`;
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`${command}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve({ stdout, stderr: stderr.text() });
        return;
      }
      const why = timedOut ? `timed out after ${timeoutMs} ms` : `failed (${code ?? signal})`;
      const out = stdout.trim() ? `\nstdout: ${stdout.trim().slice(-2000)}` : "";
      reject(new Error(`${command} ${why}:\n${stderr.text().trim()}${out}`));
    });
  });
}
