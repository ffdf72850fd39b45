// N clients asking for the same uncached blob at once, as when a new image
// rolls out to a fleet: curl's parallel mode opens every transfer at the same
// instant from one process (so the client costs the same for every system),
// and reports each transfer's first byte and end.
import { performance } from "node:perf_hooks";
import { requireBinary, run } from "../../test/helpers/process.js";

export interface ColdGetsResult {
  /** Wall time from start until the last transfer ended, s. */
  allDoneSeconds: number;
  /** The latest time to first byte among the transfers, s. */
  slowestFirstByteSeconds: number;
  /** Transfers that did not end with a 200 and the full size. */
  failed: number;
}

export async function coldGets(url: string, n: number, expectedSize: number): Promise<ColdGetsResult> {
  const curl = requireBinary("curl");
  const args = ["--no-progress-meter", "--parallel", "--parallel-immediate", "--parallel-max", String(n), "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}\\n"];
  for (let i = 0; i < n; i++) args.push("-o", "/dev/null", url);
  const started = performance.now();
  const { stdout } = await run(curl, args, { timeoutMs: 600_000 });
  const allDoneSeconds = (performance.now() - started) / 1000;
  const lines = stdout.trim().split("\n").filter((l) => l.length > 0);
  let failed = n - lines.length;
  let slowestFirstByteSeconds = 0;
  for (const line of lines) {
    const [code, size, firstByte] = line.split(" ");
    if (code !== "200" || Number(size) !== expectedSize) failed++;
    slowestFirstByteSeconds = Math.max(slowestFirstByteSeconds, Number(firstByte));
  }
  return { allDoneSeconds, slowestFirstByteSeconds, failed };
}
