// tug holds V8's young generation at its start size (a smaller resident set
// for a process that streams blobs), unless the operator sized it themselves.
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { tuneHeap, tuneWasm } from "../../src/observability/heap-tuning.js";

const ROOT = resolve(import.meta.dirname, "..", "..");

/** new_space size (MiB) of a fresh node after churning through ~200 MiB of short-lived objects. */
async function youngGenerationAfterChurn(tune: boolean): Promise<number> {
  const script = `
    import { getHeapSpaceStatistics } from "node:v8";
    ${tune ? 'const { tuneHeap } = await import("./src/observability/heap-tuning.ts"); if (!tuneHeap()) throw new Error("not applied");' : ""}
    let keep = [];
    for (let i = 0; i < 4e6; i++) { keep.push({ i, s: "x" + i }); if (keep.length > 50000) keep = []; }
    console.log(getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size / 1048576);
  `;
  const env = { ...process.env };
  delete env["NODE_OPTIONS"];
  const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, env });
  return Number(stdout.trim());
}

describe("tuneHeap", () => {
  it("keeps the young generation at its start size where it would otherwise grow", async () => {
    const [tuned, untuned] = await Promise.all([youngGenerationAfterChurn(true), youngGenerationAfterChurn(false)]);
    expect(tuned).toBeLessThanOrEqual(4);
    expect(untuned).toBeGreaterThan(tuned);
  });

  it("leaves the young generation alone when the operator sized it (command line or NODE_OPTIONS)", () => {
    expect(tuneHeap(["--max-semi-space-size=32"], "")).toBe(false);
    expect(tuneHeap([], "--max-old-space-size=512 --semi-space-growth-factor=4")).toBe(false);
    expect(tuneHeap(["--max_semi_space_size=8"], "")).toBe(false);
  });
});

/**
 * Whether a hot WebAssembly function is still on Liftoff after running long
 * enough that V8 would tier it up (without tuneWasm it tiers up within a few
 * dozen batches here). The module is one exported i32 add.
 */
async function staysOnLiftoff(tune: boolean): Promise<boolean> {
  const script = `
    ${tune ? 'const { tuneWasm } = await import("./src/observability/heap-tuning.ts"); if (!tuneWasm()) throw new Error("not applied");' : ""}
    const isLiftoff = new Function("f", "return %IsLiftoffFunction(f)");
    const bytes = new Uint8Array([0,97,115,109,1,0,0,0,1,7,1,96,2,127,127,1,127,3,2,1,0,7,7,1,3,97,100,100,0,0,10,9,1,7,0,32,0,32,1,106,11]);
    const add = (await WebAssembly.instantiate(bytes)).instance.exports.add;
    let s = add(0, 1);
    if (!isLiftoff(add)) throw new Error("not compiled by Liftoff at first");
    for (let batch = 0; batch < 3000 && isLiftoff(add); batch++) {
      for (let i = 0; i < 1e4; i++) s = add(s, 1);
      if (batch % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    console.log(isLiftoff(add));
  `;
  const env = { ...process.env };
  delete env["NODE_OPTIONS"];
  const { stdout } = await promisify(execFile)(process.execPath, ["--allow-natives-syntax", "--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, env });
  return stdout.trim() === "true";
}

describe("tuneWasm", () => {
  it("keeps WebAssembly (undici's llhttp) on Liftoff: no TurboFan recompile and its compiler memory mid-download", async () => {
    const [tuned, untuned] = await Promise.all([staysOnLiftoff(true), staysOnLiftoff(false)]);
    expect(tuned).toBe(true);
    expect(untuned).toBe(false);
  });

  it("leaves WebAssembly tiers alone when the operator chose them", () => {
    expect(tuneWasm(["--no-liftoff"], "")).toBe(false);
    expect(tuneWasm([], "--max-old-space-size=512 --wasm-tier-up")).toBe(false);
    expect(tuneWasm(["--no-wasm-dynamic-tiering"], "")).toBe(false);
  });
});
