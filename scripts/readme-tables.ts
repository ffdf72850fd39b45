// The README's generated tables — the configuration reference (from the
// schema's key table, src/config) and the metrics list (from
// src/observability/metrics.ts) — between marker comments. `--write` rewrites
// them in README.md; test/readme.test.ts fails when they drift.
//   npx tsx scripts/readme-tables.ts --write
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { configReference } from "../src/config/index.js";
import { Metrics } from "../src/observability/metrics.js";

export const README = fileURLToPath(new URL("../README.md", import.meta.url));

const cell = (s: string): string => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

export function configTable(): string {
  const rows = ["| key | default | env | meaning |", "|---|---|---|---|"];
  for (const e of configReference) {
    const def = e.default !== undefined ? `\`${e.default}\`` : e.required ? "required" : "—";
    rows.push(`| \`${e.path}\` | ${cell(def)} | ${e.env !== undefined ? `\`${e.env}\`` : ""} | ${cell(e.description)} |`);
  }
  return rows.join("\n");
}

export async function metricsTable(): Promise<string> {
  const m = new Metrics();
  const types = new Map((await m.registry.getMetricsAsJSON()).map((j) => [j.name, String(j.type)]));
  // The metric objects themselves carry their label names (the JSON export does not).
  const all = Object.values(m).filter((v): v is { name: string; help: string; labelNames: string[] } => typeof v === "object" && v !== null && "labelNames" in v && "name" in v);
  const rows = ["| metric | type | labels | meaning |", "|---|---|---|---|"];
  for (const x of all.sort((a, b) => a.name.localeCompare(b.name))) {
    rows.push(`| \`${x.name}\` | ${types.get(x.name) ?? ""} | ${x.labelNames.join(", ")} | ${cell(x.help)} |`);
  }
  return rows.join("\n");
}

/** The text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`, trimmed; undefined without the markers. */
export function section(text: string, name: string): string | undefined {
  const m = new RegExp(`<!-- ${name}:begin -->\\n([\\s\\S]*?)\\n<!-- ${name}:end -->`).exec(text);
  return m?.[1]?.trim();
}

export function replaceSection(text: string, name: string, body: string): string {
  const re = new RegExp(`(<!-- ${name}:begin -->\\n)[\\s\\S]*?(\\n<!-- ${name}:end -->)`);
  if (!re.test(text)) throw new Error(`README.md has no <!-- ${name}:begin --> … <!-- ${name}:end --> markers`);
  return text.replace(re, (_m, a: string, b: string) => `${a}${body}${b}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let text = readFileSync(README, "utf8");
  text = replaceSection(text, "config-table", configTable());
  text = replaceSection(text, "metrics-table", await metricsTable());
  if (process.argv.includes("--write")) {
    writeFileSync(README, text);
    console.log("README.md: tables updated");
  } else {
    process.stdout.write(text);
  }
}
