// Removes temp files nobody will finish: those of replicas that are gone, and
// any that have sat untouched longer than a fill may run. Replicas on several
// hosts share one data directory, so a pid says nothing about a temp file's
// writer; instead each process (INSTANCE_ID, which temp names carry) beats a
// heartbeat file under dataDir/instances/, and a writer whose heartbeat has
// gone quiet for two leases is dead (on the same host, a heartbeat whose pid
// is gone is dead at once). Ages are compared with our own heartbeat's mtime,
// written a moment earlier on the same filesystem, so clock skew between hosts
// does not matter.
import { mkdir, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { INSTANCE_ID } from "../coordination/instance-id.js";
import type { Layout } from "./layout.js";

export interface TempSweeperOptions {
  readonly layout: Layout;
  readonly logger: Logger;
  /** Heartbeat every leaseMs/3; a writer silent for 2 × leaseMs is dead. */
  readonly leaseMs: number;
  /** A temp file untouched for longer than this is removed whoever wrote it (timeouts.fill plus a margin). */
  readonly maxAgeMs: number;
  /** Pause between periodic sweeps. */
  readonly sweepEveryMs?: number;
  readonly instanceId?: string;
}

/** Temp names are "<kind>.<owner>.<random>.tmp" (Layout.temp). */
export function tempOwner(name: string): string | undefined {
  const parts = name.split(".");
  return parts.length === 4 && parts[3] === "tmp" ? parts[1] : undefined;
}

export class TempSweeper {
  readonly #o: TempSweeperOptions;
  readonly #id: string;
  readonly #dir: string;
  #beatTimer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping: Promise<number> | undefined;

  constructor(opts: TempSweeperOptions) {
    this.#o = opts;
    this.#id = opts.instanceId ?? INSTANCE_ID;
    this.#dir = join(opts.layout.root, "instances");
  }

  /** Beats once, sweeps once (start-up cleanup), then keeps doing both on timers. */
  async start(): Promise<number> {
    await this.beat();
    const removed = await this.sweep();
    const beatEvery = Math.max(100, Math.floor(this.#o.leaseMs / 3));
    this.#beatTimer = setInterval(() => void this.beat().catch(() => undefined), beatEvery);
    this.#beatTimer.unref();
    this.#sweepTimer = setInterval(() => void this.sweep().catch(() => undefined), this.#o.sweepEveryMs ?? Math.max(60_000, 2 * this.#o.leaseMs));
    this.#sweepTimer.unref();
    return removed;
  }

  stop(): void {
    clearInterval(this.#beatTimer);
    clearInterval(this.#sweepTimer);
  }

  async beat(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    // Written, not utimes()d: the filesystem (not this host's clock) stamps the mtime.
    await writeFile(join(this.#dir, this.#id), JSON.stringify({ pid: process.pid, host: hostname() }));
  }

  /** One pass over tmp/ (and over heartbeats long dead); returns how many temp files it removed. */
  sweep(): Promise<number> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<number> {
    await this.beat();
    const now = (await stat(join(this.#dir, this.#id))).mtimeMs;
    const deadAfter = 2 * this.#o.leaseMs;
    const beats = new Map<string, number>();
    for (const name of await readdir(this.#dir).catch(() => [] as string[])) {
      const st = await stat(join(this.#dir, name)).catch(() => undefined);
      if (!st) continue;
      beats.set(name, st.mtimeMs);
      // Heartbeats of instances gone for a day are only clutter.
      if (now - st.mtimeMs > 86_400_000) await rm(join(this.#dir, name), { force: true }).catch(() => undefined);
    }
    const host = hostname();
    const alive = async (owner: string): Promise<boolean> => {
      if (owner === this.#id) return true;
      if (!(now - (beats.get(owner) ?? -Infinity) <= deadAfter)) return false;
      // On this very host a dead pid says it at once (a crash and restart must not wait for the heartbeat to age).
      const beat = await readFile(join(this.#dir, owner), "utf8").then((t) => JSON.parse(t) as { pid?: unknown; host?: unknown }, () => undefined);
      return !(beat?.host === host && typeof beat.pid === "number" && !pidAlive(beat.pid));
    };

    let names: string[];
    try {
      names = await readdir(this.#o.layout.tmpDir);
    } catch {
      return 0;
    }
    let removed = 0;
    for (const name of names) {
      const path = join(this.#o.layout.tmpDir, name);
      const st = await stat(path).catch(() => undefined);
      if (!st?.isFile()) continue;
      const owner = tempOwner(name);
      // An old pid-named file, or one whose writer is dead, will never be finished.
      const abandoned = owner === undefined || now - st.mtimeMs > this.#o.maxAgeMs || !(await alive(owner));
      if (!abandoned) continue;
      await rm(path, { force: true }).catch(() => undefined);
      removed++;
    }
    if (removed > 0) this.#o.logger.info({ removed }, "removed abandoned temp files");
    return removed;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
