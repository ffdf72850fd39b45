// The results table: one row per measurement with a tug, a reference and an
// nginx column, the ratios, and the target the issue sets for that row. Rows
// are declared here once so the runner, the markdown, the JSON and the test
// that checks the table all agree on what a complete table is.

export type System = "tug" | "reference" | "nginx";

export interface RowSpec {
  readonly id: string;
  readonly label: string;
  readonly unit: string;
  /** Which direction is better, for reading the ratios. */
  readonly better: "higher" | "lower";
  /** The target, as text, and how to check it against the row's values. */
  readonly target?: { readonly text: string; readonly met: (r: RowValues) => boolean | undefined };
}

export interface RowValues {
  tug?: number;
  reference?: number;
  nginx?: number;
}

export interface Row extends RowValues {
  readonly id: string;
  readonly label: string;
  readonly unit: string;
  readonly better: "higher" | "lower";
  tugVsReference?: number;
  tugVsNginx?: number;
  target?: string;
  met?: boolean;
  note?: string;
}

const ratio = (a: number | undefined, b: number | undefined): number | undefined =>
  a !== undefined && b !== undefined && b !== 0 && Number.isFinite(a) && Number.isFinite(b) ? a / b : undefined;
const atLeast = (x: number | undefined, min: number): boolean | undefined => (x === undefined ? undefined : x >= min);
const atMost = (x: number | undefined, max: number): boolean | undefined => (x === undefined ? undefined : x <= max);
const all = (...checks: Array<boolean | undefined>): boolean | undefined => (checks.some((c) => c === undefined) ? undefined : checks.every(Boolean));

export const ROWS: readonly RowSpec[] = [
  { id: "manifest-tag-rps", label: "manifest by tag: throughput", unit: "req/s", better: "higher", target: { text: "tug ≥ 10× reference", met: (r) => atLeast(ratio(r.tug, r.reference), 10) } },
  { id: "manifest-tag-p50", label: "manifest by tag: p50 latency", unit: "ms", better: "lower" },
  { id: "manifest-tag-p99", label: "manifest by tag: p99 latency", unit: "ms", better: "lower", target: { text: "tug < 5 ms", met: (r) => (r.tug === undefined ? undefined : r.tug < 5) } },
  { id: "manifest-tag-upstream", label: "manifest by tag: upstream requests per request", unit: "req", better: "lower" },
  { id: "manifest-digest-rps", label: "manifest by digest: throughput", unit: "req/s", better: "higher", target: { text: "tug ≥ 5× reference", met: (r) => atLeast(ratio(r.tug, r.reference), 5) } },
  { id: "manifest-digest-p50", label: "manifest by digest: p50 latency", unit: "ms", better: "lower" },
  { id: "manifest-digest-p99", label: "manifest by digest: p99 latency", unit: "ms", better: "lower" },
  {
    id: "blob-1-throughput",
    label: "cached blob, 1 stream",
    unit: "MiB/s",
    better: "higher",
    target: { text: "tug ≥ 0.9× nginx and ≥ 1.0× reference", met: (r) => all(atLeast(ratio(r.tug, r.nginx), 0.9), atLeast(ratio(r.tug, r.reference), 1)) },
  },
  {
    id: "blob-4-throughput",
    label: "cached blob, 4 streams",
    unit: "MiB/s",
    better: "higher",
    target: { text: "tug ≥ 0.9× nginx and ≥ 1.0× reference", met: (r) => all(atLeast(ratio(r.tug, r.nginx), 0.9), atLeast(ratio(r.tug, r.reference), 1)) },
  },
  { id: "blob-1-cpu", label: "server CPU per GiB served, 1 stream", unit: "ms/GiB", better: "lower", target: { text: "tug ≤ reference", met: (r) => atMost(ratio(r.tug, r.reference), 1) } },
  { id: "blob-4-cpu", label: "server CPU per GiB served, 4 streams", unit: "ms/GiB", better: "lower", target: { text: "tug ≤ reference", met: (r) => atMost(ratio(r.tug, r.reference), 1) } },
  { id: "pull-cold", label: "skopeo copy of the big image, cold", unit: "s", better: "lower" },
  { id: "pull-warm", label: "skopeo copy of the big image, warm", unit: "s", better: "lower" },
  { id: "pull-cold-throttled", label: "skopeo copy, cold, upstream over a throttled link", unit: "s", better: "lower" },
  {
    id: "pull-cold-throttled-vs-direct",
    label: "cold copy over the throttled link ÷ direct over the same link",
    unit: "×",
    better: "lower",
    target: { text: "tug ≤ 1.05×", met: (r) => atMost(r.tug, 1.05) },
  },
  { id: "cold-gets-upstream", label: "concurrent cold GETs of one blob: upstream GETs", unit: "req", better: "lower", target: { text: "tug = 1", met: (r) => (r.tug === undefined ? undefined : r.tug === 1) } },
  { id: "cold-get-single", label: "one cold GET of a blob", unit: "s", better: "lower" },
  { id: "cold-gets-all-done", label: "concurrent cold GETs: all done", unit: "s", better: "lower" },
  { id: "cold-gets-vs-single", label: "concurrent cold GETs all done ÷ one cold GET", unit: "×", better: "lower", target: { text: "tug ≤ 1.2×", met: (r) => atMost(r.tug, 1.2) } },
  { id: "cold-gets-first-byte", label: "concurrent cold GETs: slowest first byte", unit: "ms", better: "lower" },
  { id: "rss-cold-pull", label: "peak RSS during a cold pull of the big image (loopback upstream)", unit: "MiB", better: "lower", target: { text: "tug ≤ 120 MiB", met: (r) => atMost(r.tug, 120) } },
  {
    id: "rss-cold-pull-throttled",
    label: "peak RSS during a cold pull of the big image (throttled link)",
    unit: "MiB",
    better: "lower",
    target: { text: "tug ≤ 120 MiB", met: (r) => atMost(r.tug, 120) },
  },
  { id: "rss-run", label: "peak RSS of the long-running server over the run", unit: "MiB", better: "lower" },
];

export class ResultTable {
  readonly #rows = new Map<string, Row>();

  constructor() {
    for (const spec of ROWS) this.#rows.set(spec.id, { id: spec.id, label: spec.label, unit: spec.unit, better: spec.better });
  }

  set(id: string, system: System, value: number | undefined): void {
    const row = this.#rows.get(id);
    if (!row) throw new Error(`no row ${id}`);
    if (value !== undefined && Number.isFinite(value)) row[system] = value;
  }

  note(id: string, text: string): void {
    const row = this.#rows.get(id);
    if (!row) throw new Error(`no row ${id}`);
    row.note = row.note ? `${row.note}; ${text}` : text;
  }

  /** Fills in ratios and target checks; returns the rows in table order. */
  rows(): Row[] {
    return ROWS.map((spec) => {
      const row = this.#rows.get(spec.id)!;
      row.tugVsReference = ratio(row.tug, row.reference);
      row.tugVsNginx = ratio(row.tug, row.nginx);
      if (spec.target) {
        row.target = spec.target.text;
        const met = spec.target.met(row);
        if (met !== undefined) row.met = met;
      }
      return row;
    });
  }
}

export function formatNumber(v: number | undefined, unit = ""): string {
  if (v === undefined) return "–";
  const a = Math.abs(v);
  const digits = unit === "×" || a < 10 ? 2 : a < 100 ? 1 : 0;
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function formatRatio(v: number | undefined): string {
  return v === undefined ? "–" : `${v.toFixed(v < 10 ? 2 : 1)}×`;
}

export function renderMarkdown(rows: Row[]): string {
  const lines = [
    "| measurement | unit | tug | reference | nginx | tug ÷ ref | tug ÷ nginx | target | met | notes |",
    "|---|---|--:|--:|--:|--:|--:|---|:-:|---|",
  ];
  for (const r of rows) {
    const met = r.met === undefined ? (r.target ? "?" : "") : r.met ? "yes" : "**no**";
    lines.push(
      `| ${r.label} | ${r.unit} | ${formatNumber(r.tug, r.unit)} | ${formatNumber(r.reference, r.unit)} | ${formatNumber(r.nginx, r.unit)} | ${formatRatio(r.tugVsReference)} | ${formatRatio(r.tugVsNginx)} | ${r.target ?? ""} | ${met} | ${r.note ?? ""} |`,
    );
  }
  return lines.join("\n");
}
