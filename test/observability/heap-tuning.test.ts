// tug holds V8's young generation at its start size (a smaller resident set
// for a process that streams blobs), unless the operator sized it themselves.
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { tuneHeap } from "../../src/observability/heap-tuning.js";

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
