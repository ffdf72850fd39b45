// `npm run bench -- --quick` runs end to end — real upstream, tug, the
// reference proxy, nginx, wrk, skopeo, curl — and writes the table with every
// row. The figures themselves are not checked here: on a shared CI machine
// they say nothing; the bench is a tool (issue 7).
import { execFile } from "node:child_process";
import { readFile, readdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { ROWS } from "../../bench/lib/table.js";
import { tempDir } from "../helpers/tug.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
let out: string | undefined;

afterAll(async () => {
  if (out) await rm(out, { recursive: true, force: true });
});

describe("npm run bench -- --quick", () => {
  it("runs end to end and writes the table (markdown and JSON) with every row", async () => {
    out = await tempDir("tug-bench-");
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", join(ROOT, "bench", "run.ts"), "--quick", "--no-replicas", "--out", out], {
      cwd: ROOT,
      timeout: 170_000,
      maxBuffer: 16 << 20,
    });
    const files = (await readdir(out)).sort();
    expect(files).toHaveLength(2);
    const md = await readFile(join(out, files.find((f) => f.endsWith("-quick.md"))!), "utf8");
    const json = JSON.parse(await readFile(join(out, files.find((f) => f.endsWith("-quick.json"))!), "utf8")) as {
      mode: string;
      rows: Array<{ id: string; label: string; tug?: number; reference?: number }>;
    };
    expect(json.mode).toBe("quick");
    expect(json.rows.map((r) => r.id)).toEqual(ROWS.map((r) => r.id));
    for (const spec of ROWS) {
      expect(md).toContain(`| ${spec.label} |`);
      expect(stdout).toContain(`| ${spec.label} |`);
      // tug's column is complete: every measurement ran against it.
      expect(typeof json.rows.find((r) => r.id === spec.id)?.tug, spec.id).toBe("number");
    }
  }, 180_000);
});
