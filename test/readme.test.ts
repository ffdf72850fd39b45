// The README cannot drift from the code: its configuration reference and its
// metrics list are the generated tables, and every file it points to exists.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configReference } from "../src/config/index.js";
import { Metrics } from "../src/observability/metrics.js";
import { README, configTable, metricsTable, section } from "../scripts/readme-tables.js";

const text = readFileSync(README, "utf8");
const FIX = "run `npx tsx scripts/readme-tables.ts --write` to regenerate it";

describe("README.md", () => {
  it(`documents every configuration key exactly as the schema defines it (${FIX})`, () => {
    const table = section(text, "config-table");
    expect(table, FIX).toBe(configTable());
    for (const e of configReference) expect(table).toContain(`| \`${e.path}\` |`);
  });

  it(`lists every metric in src/observability/metrics.ts with its type, labels and help (${FIX})`, async () => {
    const table = section(text, "metrics-table");
    expect(table, FIX).toBe(await metricsTable());
    const names = (await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name);
    for (const n of names) expect(table).toContain(`| \`${n}\` |`);
  });

  it("every repository path it mentions exists", () => {
    const paths = new Set([...text.matchAll(/(?<![\w/.-]|status )((?:deploy|scripts|config|src)\/[\w./-]*[\w])/g)].map((m) => m[1] ?? ""));
    expect(paths.size).toBeGreaterThan(5);
    for (const p of paths) expect(existsSync(join(README, "..", p)), p).toBe(true);
  });
});
