// `tug warm [--server URL] [--platform os/arch[/variant]]… [--concurrency N] IMAGE…`
import { UsageError, lastValue, parseCommandLine } from "./args.js";
import type { CliIo } from "./cli-io.js";
import { columns, humanBytes, humanElapsed } from "./format.js";
import { parseImageRef } from "./image-ref.js";
import { ProgressBoard } from "./progress-board.js";
import { normalizeServer, parsePlatform, warmImages, type WarmReport } from "./warm.js";

export const WARM_USAGE = "tug warm [--server URL] [--user USER:PASSWORD] [--platform OS/ARCH[/VARIANT]]... [--concurrency N] [--no-progress] IMAGE...";

export const DEFAULT_SERVER = "http://127.0.0.1:5000";

export async function warmCommand(args: string[], io: CliIo): Promise<number> {
  try {
    return await warm(args, io);
  } catch (err) {
    if (err instanceof UsageError && !err.message.startsWith("warm:")) throw new UsageError(`warm: ${err.message}`);
    throw err;
  }
}

async function warm(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCommandLine<{ server?: string[]; user?: string[]; platform?: string[]; concurrency?: string[]; "no-progress"?: boolean }>(
    "warm",
    args,
    {
      server: { type: "string", short: "s", multiple: true },
      user: { type: "string", short: "u", multiple: true },
      platform: { type: "string", short: "p", multiple: true },
      concurrency: { type: "string", short: "j", multiple: true },
      "no-progress": { type: "boolean" },
    },
    { positionals: true },
  );
  if (positionals.length === 0) throw new UsageError(`warm: name at least one image (${WARM_USAGE})`);
  const server = normalizeServer(lastValue(values.server) ?? DEFAULT_SERVER);
  const platforms = values.platform?.flatMap((p) => p.split(",")).map(parsePlatform);
  const concurrencyText = lastValue(values.concurrency) ?? "4";
  const concurrency = Number(concurrencyText);
  if (!/^\d+$/.test(concurrencyText) || concurrency < 1 || concurrency > 64) {
    throw new UsageError(`warm: --concurrency: ${JSON.stringify(concurrencyText)} is not a number from 1 to 64`);
  }
  const images = positionals.map(parseImageRef);
  const user = lastValue(values.user);
  if (user !== undefined && !/^[^:]+:./.test(user)) throw new UsageError("warm: --user: give USER:PASSWORD (for a tug with auth.users)");

  const board = new ProgressBoard(io.stderr, values["no-progress"] ? { interactive: false } : {});
  let report: WarmReport;
  try {
    report = await warmImages({
      server,
      images,
      ...(platforms !== undefined ? { platforms } : {}),
      concurrency,
      ...(user !== undefined ? { authorization: `Basic ${Buffer.from(user).toString("base64")}` } : {}),
      onProgress: (p) => board.update(p),
      ...(io.now ? { now: io.now } : {}),
    });
  } finally {
    board.stop();
  }
  for (const line of summary(report)) io.stdout.write(`${line}\n`);
  return report.images.every((i) => i.ok) ? 0 : 1;
}

/** The summary: a row per image (what was already cached, what was fetched) and the totals. */
export function summary(report: WarmReport): string[] {
  const ok = report.images.filter((i) => i.ok).length;
  const lines = [`warmed ${ok} of ${report.images.length} image${report.images.length === 1 ? "" : "s"} through ${report.server} in ${humanElapsed(report.elapsedMs)}`];
  const rows: string[][] = [["IMAGE", "PLATFORMS", "LAYERS", "FETCHED", "ALREADY CACHED"]];
  const failed: string[] = [];
  for (const i of report.images) {
    if (!i.ok) {
      failed.push(`  ${i.ref.text}: failed: ${i.error ?? ""}`);
      continue;
    }
    rows.push([
      i.ref.text,
      i.platforms.length > 0 ? i.platforms.join(",") : "-",
      String(i.layers),
      `${i.blobs.fetched} blobs, ${humanBytes(i.blobs.fetchedBytes)}`,
      `${i.blobs.cached} blobs, ${humanBytes(i.blobs.cachedBytes)}`,
    ]);
  }
  if (rows.length > 1) lines.push(...columns(rows).map((l) => `  ${l}`));
  lines.push(...failed);
  const u = report.unique;
  lines.push(`total: fetched ${u.fetched} blobs (${humanBytes(u.fetchedBytes)}), already cached ${u.cached} blobs (${humanBytes(u.cachedBytes)})`);
  return lines;
}
