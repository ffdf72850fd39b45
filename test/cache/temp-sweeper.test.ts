// Abandoned temp files on a data directory shared by replicas on several
// hosts: whose writer is gone is told by heartbeats (instance ids), not pids;
// ages are measured against our own heartbeat's mtime, not this host's clock.
import { randomBytes } from "node:crypto";
import { mkdir, readdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { INSTANCE_ID } from "../../src/coordination/instance-id.js";
import { Layout } from "../../src/cache/layout.js";
import { TempSweeper, tempOwner } from "../../src/cache/temp-sweeper.js";
import { silentLogger } from "../../src/observability/logger.js";
import { removeTempDir, makeTempDir } from "../helpers/process.js";

let dir: string;
let layout: Layout;
const LEASE = 10_000;

beforeEach(async () => {
  dir = makeTempDir("sweeper");
  layout = new Layout(dir);
  await mkdir(layout.tmpDir, { recursive: true });
  await mkdir(join(dir, "instances"), { recursive: true });
});
afterEach(async () => {
  await removeTempDir(dir);
});

/** Sets a file's mtime `ageMs` before now. */
async function age(path: string, ageMs: number): Promise<void> {
  const t = new Date(Date.now() - ageMs);
  await utimes(path, t, t);
}

async function temp(owner: string, ageMs = 0): Promise<string> {
  const name = `blob-0123456789ab.${owner}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(join(layout.tmpDir, name), "partial");
  await age(join(layout.tmpDir, name), ageMs);
  return name;
}

async function heartbeat(owner: string, ageMs: number): Promise<void> {
  const p = join(dir, "instances", owner);
  await writeFile(p, "{}");
  await age(p, ageMs);
}

function sweeper(): TempSweeper {
  return new TempSweeper({ layout, logger: silentLogger(), leaseMs: LEASE, maxAgeMs: 3_600_000 });
}

describe("TempSweeper", () => {
  it("reads the owner from a temp name made by Layout.temp", () => {
    const p = layout.temp("blob-abc");
    expect(tempOwner(p.split("/").pop()!)).toBe(INSTANCE_ID);
    expect(tempOwner("blob-abc.1234.ff.tmp")).toBe("1234");
    expect(tempOwner("something-else")).toBeUndefined();
  });

  it("removes the files of an instance whose heartbeat stopped, keeps a live one's and its own", async () => {
    const live = "111-aaaaaaaaaaaa";
    const dead = "222-bbbbbbbbbbbb";
    await heartbeat(live, 1_000);
    await heartbeat(dead, 3 * LEASE);
    const keepLive = await temp(live, 60_000);
    const keepOwn = await temp(INSTANCE_ID);
    const gone = await temp(dead);
    const never = await temp("333-cccccccccccc"); // no heartbeat at all
    expect(await sweeper().sweep()).toBe(2);
    const left = await readdir(layout.tmpDir);
    expect(left.sort()).toEqual([keepLive, keepOwn].sort());
    expect(left).not.toContain(gone);
    expect(left).not.toContain(never);
  });

  it("removes pid-named files of older versions, and anything untouched for longer than a fill may run", async () => {
    const live = "111-aaaaaaaaaaaa";
    await heartbeat(live, 0);
    await writeFile(join(layout.tmpDir, `blob-0123456789ab.${process.pid}.a1b2c3d4e5f6.tmp`), "x");
    const stuck = await temp(live, 2 * 3_600_000);
    const fresh = await temp(live, 0);
    expect(await sweeper().sweep()).toBe(2);
    expect(await readdir(layout.tmpDir)).toEqual([fresh]);
    expect(await readdir(layout.tmpDir)).not.toContain(stuck);
  });

  it("beats a heartbeat at start and sweeps at start-up", async () => {
    const dead = "222-bbbbbbbbbbbb";
    await temp(dead);
    const s = sweeper();
    try {
      expect(await s.start()).toBe(1);
      expect(await readdir(join(dir, "instances"))).toContain(INSTANCE_ID);
    } finally {
      s.stop();
    }
  });
});

describe("TempSweeper on one host", () => {
  it("treats an instance of this host whose pid is gone as dead at once, fresh heartbeat or not (crash, then restart)", async () => {
    const { hostname } = await import("node:os");
    const gonePid = 2 ** 22 + 12345; // above pid_max: never a live process
    const crashed = `${gonePid}-dddddddddddd`;
    await writeFile(join(dir, "instances", crashed), JSON.stringify({ pid: gonePid, host: hostname() }));
    const elsewhere = `${gonePid}-eeeeeeeeeeee`;
    await writeFile(join(dir, "instances", elsewhere), JSON.stringify({ pid: gonePid, host: "another-host" }));
    const gone = await temp(crashed);
    const kept = await temp(elsewhere);
    expect(await sweeper().sweep()).toBe(1);
    const left = await readdir(layout.tmpDir);
    expect(left).toEqual([kept]);
    expect(left).not.toContain(gone);
  });
});
