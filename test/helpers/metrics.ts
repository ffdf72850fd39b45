// Scrapes a Prometheus text exposition into "name{label="v",…}" → value, with
// labels sorted, so tests can compare samples before and after an action.
export type Samples = Map<string, number>;

export function parseExposition(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const [, name = "", labelText = "", value = ""] = m;
    const labels = [...labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, k, v]) => `${k}="${v}"`)
      .sort();
    out.set(labels.length > 0 ? `${name}{${labels.join(",")}}` : name, Number(value));
  }
  return out;
}

export async function scrape(baseUrl: string): Promise<Samples> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseExposition(await res.text());
}

/** A sample's key: key("tug_x_total", { b: "2", a: "1" }) → 'tug_x_total{a="1",b="2"}'. */
export function key(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return parts.length > 0 ? `${name}{${parts.join(",")}}` : name;
}

/** after - before for one sample (absent counts as 0). */
export function delta(before: Samples, after: Samples, name: string, labels: Record<string, string> = {}): number {
  const k = key(name, labels);
  return (after.get(k) ?? 0) - (before.get(k) ?? 0);
}
