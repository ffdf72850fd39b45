// `npx tsx bench/replicas.ts [--quick] [--clients N] [--size MiB] [--rate MiB/s] [--replicas 2,3] [--out DIR]`:
// N concurrent GETs of one uncached blob spread over several replicas of a
// cache, as when a new image rolls out to a fleet behind one Service. tug
// replicas share a data directory and a redis-server; the reference is
// Debian's docker-registry (CNCF distribution 2.8) in proxy mode, the same
// number of instances sharing one storage directory. Both sit behind the same
// upstream (a real docker-registry) through the same throttled link (one
// token bucket shared by all connections, like a real uplink). Prints, per
// system and replica count: upstream GETs of the blob, bytes over the link,
// time until every client is done, and time to first byte (for tug also that
// of the clients of follower replicas), each replica having served one
// warm-up blob first; writes the table
// to bench/results/replicas-<date>.{md,json}.
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { pseudoRandomBytes, pushBlob, sha256 } from "../test/helpers/images.js";
import { makeTempDir, removeTempDir, requireBinary, run, stopChild } from "../test/helpers/process.js";
import { startRedis } from "../test/helpers/redis.js";
import { startRegistry, type RunningRegistry } from "../test/helpers/registry.js";
import { spawnTug } from "../test/helpers/tug-process.js";
import { startThrottledLink, type ThrottledLink } from "./lib/throttled-link.js";

const MiB = 1024 * 1024;
const ROOT = resolve(import.meta.dirname, "..");

interface Args {
  quick: boolean;
  clients: number;
  sizeMiB: number;
  rateMiB: number;
  replicas: number[];
  out: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, clients: 40, sizeMiB: 64, rateMiB: 100, replicas: [2, 3], out: join(ROOT, "bench", "results") };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--quick") Object.assign(a, { quick: true, clients: 10, sizeMiB: 8, replicas: [2] });
    else if (arg === "--clients") a.clients = Number(next());
    else if (arg === "--size") a.sizeMiB = Number(next());
    else if (arg === "--rate") a.rateMiB = Number(next());
    else if (arg === "--replicas") a.replicas = next().split(",").map(Number);
    else if (arg === "--out") a.out = resolve(next());
    else throw new Error(`unknown argument ${arg} (usage: npx tsx bench/replicas.ts [--quick] [--clients N] [--size MiB] [--rate MiB/s] [--replicas 2,3] [--out DIR])`);
  }
  if (![a.clients, a.sizeMiB, a.rateMiB, ...a.replicas].every((n) => Number.isFinite(n) && n > 0)) throw new Error("numbers must be positive");
  return a;
}

interface Measured {
  system: string;
  replicas: number;
  clients: number;
  upstreamGets: number;
  upstreamMiB: number;
  allDoneSeconds: number;
  ttfbP50Seconds: number;
  ttfbMaxSeconds: number;
  /** tug: clients of the replicas that followed another's download (waited on its lock). */
  followerTtfbP50Seconds?: number;
  followerTtfbMaxSeconds?: number;
  failed: number;
}

/** curl's parallel mode: every transfer opens at once from one process, so the client costs the same for every system. */
async function concurrentGets(urls: string[], expectedSize: number): Promise<{ allDone: number; ttfb: number[]; byUrl: Array<[string, number]>; failed: number }> {
  const curl = requireBinary("curl");
  const args = ["--no-progress-meter", "--parallel", "--parallel-immediate", "--parallel-max", String(urls.length), "-w", "%{http_code} %{size_download} %{time_starttransfer} %{url}\\n"];
  for (const u of urls) args.push("-o", "/dev/null", u);
  const started = performance.now();
  const { stdout } = await run(curl, args, { timeoutMs: 900_000 });
  const allDone = (performance.now() - started) / 1000;
  const lines = stdout.trim().split("\n").filter(Boolean);
  let failed = urls.length - lines.length;
  const ttfb: number[] = [];
  const byUrl: Array<[string, number]> = [];
  for (const line of lines) {
    const [code, size, first, url] = line.split(" ");
    if (code !== "200" || Number(size) !== expectedSize) failed++;
    ttfb.push(Number(first));
    byUrl.push([url ?? "", Number(first)]);
  }
  return { allDone, ttfb: ttfb.sort((x, y) => x - y), byUrl, failed };
}

const p50 = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? NaN;

function summarize(system: string, replicas: number, clients: number, upstreamGets: number, bytes: number, r: Awaited<ReturnType<typeof concurrentGets>>): Measured {
  return {
    system,
    replicas,
    clients,
    upstreamGets,
    upstreamMiB: bytes / MiB,
    allDoneSeconds: r.allDone,
    ttfbP50Seconds: r.ttfb[Math.floor(r.ttfb.length / 2)] ?? NaN,
    ttfbMaxSeconds: r.ttfb[r.ttfb.length - 1] ?? NaN,
    failed: r.failed,
  };
}

/** The blob every replica fetches once, together, before the measurement: a fresh process's first request pays for loading code, not for caching. */
interface WarmUp {
  readonly digest: string;
  readonly size: number;
}

async function warm(urls: string[], w: WarmUp): Promise<void> {
  const r = await concurrentGets(urls.map((u) => `${u}/v2/bench/replicas/blobs/${w.digest}`), w.size);
  if (r.failed > 0) throw new Error("warm-up GETs failed");
}

async function benchTug(n: number, args: Args, link: ThrottledLink, upstream: RunningRegistry, redisUrl: string, digest: string, size: number, w: WarmUp): Promise<Measured> {
  const dataDir = makeTempDir("bench-replicas-tug");
  const prefix = `bench-${randomBytes(4).toString("hex")}:`;
  const replicas = await Promise.all(
    Array.from({ length: n }, () =>
      spawnTug({ dataDir, config: { log: { level: "warn" }, upstreams: { "upstream.bench": { url: link.url, default: true } }, redis: { url: redisUrl, prefix } } }),
    ),
  );
  try {
    await warm(replicas.map((r) => r.url), w);
    const lockWaits = async (url: string): Promise<number> => Number(/^tug_lock_waits_total (\S+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);
    const waits0 = await Promise.all(replicas.map((rep) => lockWaits(rep.url)));
    const gets0 = upstream.countRequests({ method: "GET", pathIncludes: `/blobs/${digest}` });
    const down0 = link.bytesDown();
    const urls = Array.from({ length: args.clients }, (_, i) => `${replicas[i % n]!.url}/v2/bench/replicas/blobs/${digest}`);
    const r = await concurrentGets(urls, size);
    const m = summarize("tug (shared dir + Redis)", n, args.clients, upstream.countRequests({ method: "GET", pathIncludes: `/blobs/${digest}` }) - gets0, link.bytesDown() - down0, r);
    // Followers are the replicas that waited on another's lock (tug_lock_waits_total > 0).
    const followers = new Set<string>();
    for (const [i, rep] of replicas.entries()) if ((await lockWaits(rep.url)) > waits0[i]!) followers.add(rep.url);
    process.stderr.write(`[replicas] tug × ${n}: ${followers.size} replica(s) followed another's download\n`);
    const ft = r.byUrl.filter(([u]) => [...followers].some((f) => u.startsWith(f))).map(([, t]) => t);
    m.followerTtfbP50Seconds = p50(ft);
    m.followerTtfbMaxSeconds = Math.max(...ft);
    return m;
  } finally {
    await Promise.all(replicas.map((r) => stopChild(r.child)));
    await removeTempDir(dataDir);
  }
}

async function benchReference(n: number, args: Args, link: ThrottledLink, upstream: RunningRegistry, digest: string, size: number, w: WarmUp): Promise<Measured> {
  const storage = makeTempDir("bench-replicas-ref");
  const replicas: RunningRegistry[] = [];
  try {
    for (let i = 0; i < n; i++) {
      replicas.push(await startRegistry({ extraConfig: { proxy: { remoteurl: link.url }, storage: { filesystem: { rootdirectory: storage } } } }));
    }
    await warm(replicas.map((r) => r.directUrl), w);
    const gets0 = upstream.countRequests({ method: "GET", pathIncludes: `/blobs/${digest}` });
    const down0 = link.bytesDown();
    const urls = Array.from({ length: args.clients }, (_, i) => `${replicas[i % n]!.directUrl}/v2/bench/replicas/blobs/${digest}`);
    const r = await concurrentGets(urls, size);
    return summarize("docker-registry proxy (shared storage)", n, args.clients, upstream.countRequests({ method: "GET", pathIncludes: `/blobs/${digest}` }) - gets0, link.bytesDown() - down0, r);
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
    await removeTempDir(storage);
  }
}

/**
 * Between systems: flush what the last one wrote (the reference writes one
 * copy per upstream GET, gigabytes of dirty pages whose writeback would slow
 * whoever runs next) and let the machine go quiet.
 */
async function settle(): Promise<void> {
  await run(requireBinary("sync"), []);
  await new Promise((r) => setTimeout(r, 1000));
}

function table(rows: Measured[]): string {
  const head = "| system | replicas | clients | upstream GETs of the blob | MiB over the link | all done (s) | TTFB p50 (s) | TTFB max (s) | followers' TTFB p50 / max (s) | failed |";
  const sep = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
  const f = (x: number | undefined, d = 2): string => (x !== undefined && Number.isFinite(x) ? x.toFixed(d) : "–");
  const fol = (r: Measured): string => (r.followerTtfbP50Seconds === undefined ? "–" : `${f(r.followerTtfbP50Seconds, 3)} / ${f(r.followerTtfbMaxSeconds, 3)}`);
  return [
    head,
    sep,
    ...rows.map((r) => `| ${r.system} | ${r.replicas} | ${r.clients} | ${r.upstreamGets} | ${f(r.upstreamMiB, 0)} | ${f(r.allDoneSeconds)} | ${f(r.ttfbP50Seconds, 3)} | ${f(r.ttfbMaxSeconds, 3)} | ${fol(r)} | ${r.failed} |`),
  ].join("\n");
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const size = args.sizeMiB * MiB;
  const log = (m: string): void => void process.stderr.write(`[replicas] ${m}\n`);
  const started = new Date();
  const [redis, upstream] = await Promise.all([startRedis(), startRegistry()]);
  const link = await startThrottledLink({ host: "127.0.0.1", port: Number(new URL(upstream.url).port) }, args.rateMiB * MiB);
  const rows: Measured[] = [];
  try {
    log(`seeding a ${args.sizeMiB} MiB blob`);
    const data = pseudoRandomBytes(size, 4242);
    const digest = sha256(data);
    await pushBlob(upstream.directUrl, "bench/replicas", { digest, data });
    const warmData = pseudoRandomBytes(MiB, 4343);
    const w: WarmUp = { digest: sha256(warmData), size: warmData.length };
    await pushBlob(upstream.directUrl, "bench/replicas", { digest: w.digest, data: warmData });
    // One cold GET straight through the link: the time a single download takes (and a warm upstream page cache for everyone).
    const down0 = link.bytesDown();
    const direct = await concurrentGets([`${link.url}/v2/bench/replicas/blobs/${digest}`], size);
    rows.push(summarize("direct (1 GET through the link)", 0, 1, 1, link.bytesDown() - down0, direct));
    for (const n of args.replicas) {
      log(`tug × ${n}`);
      rows.push(await benchTug(n, args, link, upstream, redis.url, digest, size, w));
      await settle();
      log(`docker-registry proxy × ${n}`);
      rows.push(await benchReference(n, args, link, upstream, digest, size, w));
      await settle();
    }
  } finally {
    await link.close();
    await upstream.stop();
    await redis.close();
  }
  const md = [
    `## Replicas: ${args.clients} concurrent GETs of one uncached ${args.sizeMiB} MiB blob, spread over the replicas`,
    "",
    `Upstream: docker-registry behind a ${args.rateMiB} MiB/s link shared by all connections; every system starts cold. ${started.toISOString()}${args.quick ? " (quick mode)" : ""}.`,
    "",
    table(rows),
    "",
  ].join("\n");
  process.stdout.write(`\n${md}\n`);
  mkdirSync(args.out, { recursive: true });
  const base = join(args.out, `replicas-${started.toISOString().replace(/[:.]/g, "-")}${args.quick ? "-quick" : ""}`);
  writeFileSync(`${base}.md`, md);
  writeFileSync(`${base}.json`, JSON.stringify({ date: started.toISOString(), args, rows }, null, 2) + "\n");
  log(`wrote ${base}.md and ${base}.json`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`replicas bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
