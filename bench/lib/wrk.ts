// Load from wrk (Debian's package): a small Lua script sets the headers and
// prints wrk's own summary as one JSON line, so nothing is scraped from its
// human-readable output.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir, removeTempDir, requireBinary, run } from "../../test/helpers/process.js";

export interface WrkResult {
  requests: number;
  bytes: number;
  seconds: number;
  requestsPerSecond: number;
  bytesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Non-2xx/3xx answers plus socket errors and timeouts: a run with any is not a valid measurement. */
  errors: number;
}

export interface WrkOptions {
  connections: number;
  threads?: number;
  durationSeconds: number;
  headers?: Record<string, string>;
  method?: "GET" | "HEAD";
}

const DONE = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"bytes":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\\n',
    summary.requests, summary.bytes, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
`;

function luaString(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

export async function wrk(url: string, opts: WrkOptions): Promise<WrkResult> {
  const bin = requireBinary("wrk");
  const dir = makeTempDir("wrk");
  const script = join(dir, "bench.lua");
  const lines = [`wrk.method = ${luaString(opts.method ?? "GET")}`];
  for (const [k, v] of Object.entries(opts.headers ?? {})) lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`);
  writeFileSync(script, lines.join("\n") + "\n" + DONE);
  const threads = Math.min(opts.threads ?? 1, opts.connections);
  const args = ["-t", String(threads), "-c", String(opts.connections), "-d", `${opts.durationSeconds}s`, "--timeout", "10s", "-s", script, url];
  let stdout: string;
  try {
    ({ stdout } = await run(bin, args, { timeoutMs: (opts.durationSeconds + 30) * 1000 }));
  } finally {
    await removeTempDir(dir);
  }
  const line = stdout.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (!line) throw new Error(`wrk ${args.join(" ")}: no summary in its output:\n${stdout}`);
  const r = JSON.parse(line.slice("WRK_JSON ".length)) as { requests: number; bytes: number; duration_us: number; p50_us: number; p99_us: number; errors: number };
  const seconds = r.duration_us / 1e6;
  return {
    requests: r.requests,
    bytes: r.bytes,
    seconds,
    requestsPerSecond: r.requests / seconds,
    bytesPerSecond: r.bytes / seconds,
    p50Ms: r.p50_us / 1000,
    p99Ms: r.p99_us / 1000,
    errors: r.errors,
  };
}
