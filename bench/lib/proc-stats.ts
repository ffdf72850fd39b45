// What a server process costs while the bench drives it, read from /proc:
// CPU time (user + system) of a process and its descendants, and peak RSS.
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Fields of /proc/<pid>/stat after the command name (which may contain spaces). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** pid and every live descendant (nginx: master and workers). */
export function processTree(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const f = statFields(Number(name));
    if (f) parentOf.set(Number(name), Number(f[1]));
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** CPU milliseconds (utime + stime) used so far by pid and its descendants. */
export function cpuMs(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const f = statFields(p);
    // state is field 3 of stat; after the name it is index 0, so utime (14) is 11, stime (15) is 12.
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return (ticks * 1000) / clockTicks();
}

/** Peak resident set size (VmHWM) in bytes, summed over pid and its descendants. */
export function peakRssBytes(pid: number): number {
  let kib = 0;
  for (const p of processTree(pid)) {
    try {
      const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, "utf8"));
      if (m) kib += Number(m[1]);
    } catch {
      // gone meanwhile
    }
  }
  return kib * 1024;
}

/** The pid of the live process whose command line contains needle (e.g. a config path). */
export function findPidByCmdline(needle: string): number | undefined {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (cmd.some((arg) => arg.includes(needle))) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** One line naming the machine, for the results header. */
export function machineSummary(): { cpus: number; model: string; memGiB: number; kernel: string; node: string } {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const cpus = (cpuinfo.match(/^processor\s*:/gm) ?? []).length;
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0);
  const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  return { cpus, model, memGiB: Math.round(memKiB / 1024 / 1024), kernel, node: process.version };
}

/** CPU ms of pid's live tree including what its reaped descendants used (cutime + cstime). */
function treeCpuMsWithReaped(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const f = statFields(p);
    if (f) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return (ticks * 1000) / clockTicks();
}

/** Busy CPU ms of the whole machine (all CPUs) so far, from /proc/stat. */
function machineBusyMs(): number {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  return ((user + nice + system + irq + softirq + steal) * 1000) / clockTicks();
}

/**
 * How busy the machine was with work that is not the bench's (other people's
 * tests on a shared box): machine busy time minus the CPU of this process
 * and everything it started, in cores. Approximate (softirq work done in
 * kernel threads counts as other), but it tells a quiet run from a noisy one.
 */
export class LoadMeter {
  #elapsed = 0;
  #other = 0;
  #t0 = 0;
  #busy0 = 0;
  #ours0 = 0;

  start(): void {
    this.#t0 = Date.now();
    this.#busy0 = machineBusyMs();
    this.#ours0 = treeCpuMsWithReaped(process.pid);
  }

  stop(): void {
    this.#elapsed += Date.now() - this.#t0;
    this.#other += machineBusyMs() - this.#busy0 - (treeCpuMsWithReaped(process.pid) - this.#ours0);
  }

  /** Average cores used by others over the measured intervals. */
  get otherCores(): number {
    return this.#elapsed > 0 ? Math.max(0, this.#other / this.#elapsed) : 0;
  }
}
