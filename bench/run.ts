// `npm run bench [-- --quick] [--out DIR] [--cpu-prof DIR] [--only SECTION,…] [--no-replicas]`:
// tug side by side with the reference pull-through proxy (Debian's
// docker-registry, CNCF distribution 2.8) and nginx serving the same blob
// file, against one real docker-registry upstream with generated images, all
// on loopback. Prints one table and writes it to bench/results/ (markdown +
// JSON, named by date). Every figure comes from this run: each is the median
// of a few rounds that alternate between the systems, so a burst of load from
// elsewhere on a shared machine does not land on one system only.
import { availableParallelism } from "node:os";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { skopeoCopy } from "../test/helpers/clients.js";
import { MANIFEST_ACCEPT } from "../test/helpers/images.js";
import { requireBinary, spawnTied } from "../test/helpers/process.js";
import { startRegistry, type RunningRegistry } from "../test/helpers/registry.js";
import { coldGets } from "./lib/cold-gets.js";
import { seedBenchImages, type BenchImages } from "./lib/fixtures.js";
import { startNginx } from "./lib/nginx.js";
import { LoadMeter, cpuMs, machineSummary, peakRssBytes } from "./lib/proc-stats.js";
import { startReference } from "./lib/reference-proxy.js";
import { ResultTable, formatNumber, renderMarkdown, type System } from "./lib/table.js";
import { startThrottledLink, type ThrottledLink } from "./lib/throttled-link.js";
import { ROOT, ensureBuilt, startTugServer } from "./lib/tug-server.js";
import { wrk, type WrkResult } from "./lib/wrk.js";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface Profile {
  bigLayerBytes: number;
  coldBlobBytes: number;
  coldClients: number;
  linkBytesPerSecond: number;
  /** Rounds of the wrk measurements (manifests, cached blobs). */
  rounds: number;
  /** Rounds of the measurements that need fresh caches (pulls, cold GETs). */
  freshRounds: number;
  manifestWarmupSeconds: number;
  manifestSeconds: number;
  blobWarmupSeconds: number;
  blobSeconds: number;
  connections: number;
}

const FULL: Profile = {
  bigLayerBytes: 256 * MiB,
  coldBlobBytes: 32 * MiB,
  coldClients: 20,
  linkBytesPerSecond: 100 * MiB,
  rounds: 3,
  freshRounds: 2,
  manifestWarmupSeconds: 1,
  manifestSeconds: 5,
  blobWarmupSeconds: 1,
  blobSeconds: 4,
  connections: 32,
};

const QUICK: Profile = {
  ...FULL,
  bigLayerBytes: 16 * MiB,
  coldBlobBytes: 2 * MiB,
  rounds: 1,
  freshRounds: 1,
  manifestWarmupSeconds: 0,
  manifestSeconds: 1,
  blobWarmupSeconds: 0,
  blobSeconds: 1,
};

const SECTIONS = ["manifests", "blobs", "pulls", "cold-gets"] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  quick: boolean;
  /** Sections to run (all by default): for iterating on one hot path. */
  only: ReadonlySet<Section>;
  out: string;
  cpuProf: string | undefined;
  replicas: boolean;
}

const USAGE = "usage: npm run bench -- [--quick] [--out DIR] [--cpu-prof DIR] [--only SECTION,…] [--no-replicas]";

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, only: new Set(SECTIONS), out: join(ROOT, "bench", "results"), cpuProf: undefined, replicas: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") args.quick = true;
    else if (a === "--no-replicas") args.replicas = false;
    else if (a === "--only") {
      const list = (argv[++i] ?? fail("--only needs a list of sections")).split(",");
      for (const x of list) if (!(SECTIONS as readonly string[]).includes(x)) fail(`--only: unknown section ${x} (sections: ${SECTIONS.join(", ")})`);
      args.only = new Set(list as Section[]);
    } else if (a === "--out") args.out = argv[++i] ?? fail("--out needs a directory");
    else if (a === "--cpu-prof") args.cpuProf = argv[++i] ?? fail("--cpu-prof needs a directory");
    else fail(`unknown argument ${a} (${USAGE})`);
  }
  return args;
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

/** Per (row, system): the value of each round; the table gets the median. */
class Samples {
  readonly #values = new Map<string, number[]>();

  add(row: string, system: System, value: number): void {
    const k = `${row}\n${system}`;
    const list = this.#values.get(k) ?? [];
    list.push(value);
    this.#values.set(k, list);
  }

  fill(table: ResultTable): Record<string, number[]> {
    const all: Record<string, number[]> = {};
    for (const [k, list] of this.#values) {
      const [row, system] = k.split("\n") as [string, System];
      table.set(row, system, median(list));
      all[`${row}/${system}`] = list;
    }
    return all;
  }
}

interface Server {
  readonly system: System;
  readonly url: string;
  readonly pid: number;
}

/** GETs url and checks status and the digest of the body: a fast wrong answer is no result. */
async function verifyGet(url: string, digest: string, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(url, { headers });
  const body = Buffer.from(await res.arrayBuffer());
  const got = `sha256:${createHash("sha256").update(body).digest("hex")}`;
  if (res.status !== 200 || got !== digest) throw new Error(`GET ${url}: ${res.status}, body ${got}, expected ${digest}`);
}

const manifestHeaders = { Accept: MANIFEST_ACCEPT };

async function measureManifests(samples: Samples, table: ResultTable, servers: Server[], images: BenchImages, upstream: RunningRegistry, p: Profile): Promise<unknown[]> {
  const runs: unknown[] = [];
  const targets = [
    { kind: "tag", path: `/v2/${images.multi.repo}/manifests/${images.multi.tag}`, digest: images.multi.index.digest },
    { kind: "digest", path: `/v2/${images.layers.repo}/manifests/${images.layers.image.digest}`, digest: images.layers.image.digest },
  ];
  const upstreamPerRequest = new Map<System, { upstream: number; requests: number }>();
  for (const t of targets) {
    for (const s of servers) await verifyGet(s.url + t.path, t.digest, manifestHeaders);
    for (let round = 1; round <= p.rounds; round++) {
      for (const s of servers) {
        const url = s.url + t.path;
        if (p.manifestWarmupSeconds > 0) await wrk(url, { connections: p.connections, durationSeconds: p.manifestWarmupSeconds, headers: manifestHeaders });
        upstream.resetRequests();
        const r = await wrk(url, { connections: p.connections, durationSeconds: p.manifestSeconds, headers: manifestHeaders });
        const upstreamRequests = upstream.countRequests();
        log(`manifest by ${t.kind}, ${s.system}, round ${round}: ${r.requestsPerSecond.toFixed(0)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ${upstreamRequests} upstream requests`);
        runs.push({ kind: t.kind, system: s.system, round, ...r, upstreamRequests });
        if (r.errors > 0) {
          table.note(`manifest-${t.kind}-rps`, `${s.system}: a run with ${r.errors} errors was left out`);
          continue;
        }
        samples.add(`manifest-${t.kind}-rps`, s.system, r.requestsPerSecond);
        samples.add(`manifest-${t.kind}-p50`, s.system, r.p50Ms);
        samples.add(`manifest-${t.kind}-p99`, s.system, r.p99Ms);
        if (t.kind === "tag") {
          const acc = upstreamPerRequest.get(s.system) ?? { upstream: 0, requests: 0 };
          acc.upstream += upstreamRequests;
          acc.requests += r.requests;
          upstreamPerRequest.set(s.system, acc);
        }
      }
    }
  }
  for (const [system, acc] of upstreamPerRequest) table.set("manifest-tag-upstream", system, acc.upstream / acc.requests);
  table.note("manifest-tag-rps", `wrk, ${p.connections} connections, ${p.manifestSeconds} s × ${p.rounds} rounds`);
  table.note("manifest-tag-upstream", "counted at the upstream during the timed runs; the tag is fresh in tug's cache");
  return runs;
}

async function measureBlobs(samples: Samples, table: ResultTable, servers: Array<Server & { blobUrl: string }>, p: Profile): Promise<unknown[]> {
  const runs: unknown[] = [];
  for (const streams of [1, 4]) {
    // One wrk thread per stream, up to a core each: one thread reading 4 streams is the bottleneck itself.
    const threads = Math.min(streams, availableParallelism());
    for (let round = 1; round <= p.rounds; round++) {
      for (const s of servers) {
        if (p.blobWarmupSeconds > 0) await wrk(s.blobUrl, { connections: streams, threads, durationSeconds: p.blobWarmupSeconds });
        const before = cpuMs(s.pid);
        const r: WrkResult = await wrk(s.blobUrl, { connections: streams, threads, durationSeconds: p.blobSeconds });
        const cpu = cpuMs(s.pid) - before;
        const mibs = r.bytesPerSecond / MiB;
        const cpuPerGiB = cpu / (r.bytes / GiB);
        log(`cached blob, ${streams} stream(s), ${s.system}, round ${round}: ${mibs.toFixed(0)} MiB/s, ${cpuPerGiB.toFixed(0)} ms CPU/GiB`);
        runs.push({ streams, system: s.system, round, ...r, serverCpuMs: cpu });
        if (r.errors > 0) {
          table.note(`blob-${streams}-throughput`, `${s.system}: a run with ${r.errors} errors was left out`);
          continue;
        }
        samples.add(`blob-${streams}-throughput`, s.system, mibs);
        samples.add(`blob-${streams}-cpu`, s.system, cpuPerGiB);
      }
    }
  }
  table.note("blob-1-throughput", `wrk, back-to-back GETs, ${p.blobSeconds} s × ${p.rounds} rounds`);
  table.note("blob-4-throughput", `wrk with ${Math.min(4, availableParallelism())} threads`);
  table.note("blob-1-cpu", "user + system CPU of the server's processes ÷ bytes wrk received");
  return runs;
}

type FreshServer = { url: string; host: string; pid: number };

/** A fresh, empty cache of the given kind in front of upstreamUrl, stopped after fn. */
async function withFresh<T>(system: "tug" | "reference", upstreamUrl: string, args: Args, fn: (s: FreshServer) => Promise<T>): Promise<T> {
  const s = system === "tug" ? await startTugServer({ upstream: upstreamUrl, ...(args.cpuProf ? { cpuProfDir: args.cpuProf } : {}) }) : await startReference(upstreamUrl);
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}

/** skopeo copy of the big image from host into a temp dir; checks what it got (skopeo verifies every digest). */
async function timedCopy(host: string, images: BenchImages): Promise<number> {
  const started = performance.now();
  const copy = await skopeoCopy(`docker://${host}/${images.big.repo}:${images.big.tag}`, { timeoutMs: 600_000 });
  const seconds = (performance.now() - started) / 1000;
  try {
    if (copy.manifestDigest !== images.big.image.digest || !copy.blobDigests.includes(images.big.layerDigest)) {
      throw new Error(`skopeo copy from ${host}: got manifest ${copy.manifestDigest}, blobs ${copy.blobDigests.join(",")}`);
    }
  } finally {
    await copy.cleanup();
  }
  return seconds;
}

async function measurePulls(samples: Samples, table: ResultTable, images: BenchImages, upstream: RunningRegistry, link: ThrottledLink, p: Profile, args: Args): Promise<unknown[]> {
  const runs: unknown[] = [];
  const linkHost = new URL(link.url).host;
  const directs: number[] = [];
  const directsThrottled: number[] = [];
  for (let round = 1; round <= p.freshRounds; round++) {
    const direct = await timedCopy(upstream.host, images);
    directs.push(direct);
    log(`skopeo copy, direct from the upstream, round ${round}: ${direct.toFixed(2)} s`);
    for (const system of ["tug", "reference"] as const) {
      await withFresh(system, upstream.url, args, async (s) => {
        const cold = await timedCopy(s.host, images);
        const rss = peakRssBytes(s.pid) / MiB;
        const warm = await timedCopy(s.host, images);
        log(`skopeo copy through ${system}, round ${round}: cold ${cold.toFixed(2)} s, warm ${warm.toFixed(2)} s, peak RSS ${rss.toFixed(0)} MiB`);
        samples.add("pull-cold", system, cold);
        samples.add("pull-warm", system, warm);
        samples.add("rss-cold-pull", system, rss);
        runs.push({ system, round, link: "loopback", cold, warm, peakRssMiB: rss, direct });
      });
    }
    // Direct and cached copies over the same link, one right after the other.
    const directThrottled = await timedCopy(linkHost, images);
    directsThrottled.push(directThrottled);
    log(`skopeo copy, direct over the throttled link, round ${round}: ${directThrottled.toFixed(2)} s`);
    for (const system of ["tug", "reference"] as const) {
      await withFresh(system, link.url, args, async (s) => {
        const cold = await timedCopy(s.host, images);
        const rss = peakRssBytes(s.pid) / MiB;
        log(`skopeo copy through ${system} over the throttled link, round ${round}: ${cold.toFixed(2)} s (${(cold / directThrottled).toFixed(2)}× direct), peak RSS ${rss.toFixed(0)} MiB`);
        samples.add("pull-cold-throttled", system, cold);
        samples.add("pull-cold-throttled-vs-direct", system, cold / directThrottled);
        samples.add("rss-cold-pull-throttled", system, rss);
        runs.push({ system, round, link: "throttled", cold, peakRssMiB: rss, direct: directThrottled });
      });
    }
  }
  table.note("pull-cold", `direct from the upstream: ${formatNumber(median(directs))} s; one ${formatNumber(images.big.layerSize / MiB)} MiB layer`);
  table.note("pull-cold-throttled", `direct over the same link: ${formatNumber(median(directsThrottled))} s; link ${formatNumber(link.rate / MiB)} MiB/s shared token bucket`);
  table.note("pull-cold-throttled-vs-direct", "per round, the direct copy just before");
  table.note("rss-cold-pull", "VmHWM of a fresh server after the copy");
  return runs;
}

async function measureColdGets(samples: Samples, table: ResultTable, images: BenchImages, upstream: RunningRegistry, link: ThrottledLink, p: Profile, args: Args): Promise<unknown[]> {
  const runs: unknown[] = [];
  const [first, second] = images.cold.digests;
  for (let round = 1; round <= p.freshRounds; round++) {
    for (const system of ["tug", "reference"] as const) {
      await withFresh(system, link.url, args, async (s) => {
        const blobUrl = (d: string): string => `${s.url}/v2/${images.cold.repo}/blobs/${d}`;
        const single = await coldGets(blobUrl(first), 1, images.cold.size);
        upstream.resetRequests();
        const many = await coldGets(blobUrl(second), p.coldClients, images.cold.size);
        const upstreamGets = upstream.countRequests({ method: "GET", pathIncludes: second });
        // Untimed: what the cache now serves is the blob, byte for byte.
        await verifyGet(blobUrl(second), second);
        log(
          `${p.coldClients} cold GETs through ${system}, round ${round}: ${upstreamGets} upstream GETs, all done ${many.allDoneSeconds.toFixed(2)} s ` +
            `(one: ${single.allDoneSeconds.toFixed(2)} s), slowest first byte ${(many.slowestFirstByteSeconds * 1000).toFixed(0)} ms, ${many.failed} failed`,
        );
        runs.push({ system, round, single, many, upstreamGets });
        if (single.failed > 0 || many.failed > 0) {
          table.note("cold-gets-all-done", `${system}: a round with ${single.failed + many.failed} failed transfers was left out`);
          return;
        }
        samples.add("cold-gets-upstream", system, upstreamGets);
        samples.add("cold-get-single", system, single.allDoneSeconds);
        samples.add("cold-gets-all-done", system, many.allDoneSeconds);
        samples.add("cold-gets-vs-single", system, many.allDoneSeconds / single.allDoneSeconds);
        samples.add("cold-gets-first-byte", system, many.slowestFirstByteSeconds * 1000);
      });
    }
  }
  table.note("cold-gets-upstream", `${p.coldClients} clients at once (curl --parallel), ${formatNumber(images.cold.size / MiB)} MiB blob, upstream over the throttled link`);
  table.note("cold-get-single", "one client, another blob of the same size, same fresh cache");
  return runs;
}

function stamp(d: Date): string {
  const pad = (n: number): string => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const p = args.quick ? QUICK : FULL;
  for (const bin of ["wrk", "nginx", "docker-registry", "skopeo", "curl"]) requireBinary(bin);
  const started = new Date();
  log(`mode ${args.quick ? "quick" : "full"}; tug build: ${await ensureBuilt()}`);
  if (args.cpuProf) mkdirSync(args.cpuProf, { recursive: true });

  const table = new ResultTable();
  const samples = new Samples();
  const load = new LoadMeter();
  const raw: Record<string, unknown> = {};
  const upstream = await startRegistry();
  const cleanups: Array<() => Promise<void>> = [() => upstream.stop()];
  try {
    const images = await seedBenchImages(upstream.directUrl, p);
    const upstreamPort = Number(new URL(upstream.url).port);
    const link = await startThrottledLink({ host: "127.0.0.1", port: upstreamPort }, p.linkBytesPerSecond);
    cleanups.push(() => link.close());
    log(`upstream seeded (big layer ${images.big.layerSize} bytes); throttled link at ${link.url}`);

    if (args.only.has("manifests") || args.only.has("blobs")) {
      // Long-running servers: manifests and cached blobs.
      const longRunning: Array<() => Promise<void>> = [];
      const stopLongRunning = async (): Promise<void> => {
        for (const stop of longRunning.splice(0).reverse()) await stop();
      };
      cleanups.push(stopLongRunning);
      const tug = await startTugServer({ upstream: upstream.url, ...(args.cpuProf ? { cpuProfDir: args.cpuProf } : {}) });
      longRunning.push(() => tug.stop());
      const ref = await startReference(upstream.url);
      longRunning.push(() => ref.stop());
      const blobPath = `/v2/${images.big.repo}/blobs/${images.big.layerDigest}`;
      for (const s of [tug, ref]) {
        // Fill both caches; the second GET is a hit wherever the first one cached.
        await verifyGet(s.url + blobPath, images.big.layerDigest);
        await verifyGet(s.url + blobPath, images.big.layerDigest);
      }
      const hex = images.big.layerDigest.slice("sha256:".length);
      const blobFile = join(tug.dataDir, "blobs", "sha256", hex.slice(0, 2), hex);
      if (!existsSync(blobFile)) throw new Error(`tug did not cache the big layer at ${blobFile}`);
      const nginx = await startNginx(blobFile);
      longRunning.push(() => nginx.stop());
      await verifyGet(`${nginx.url}/blob`, images.big.layerDigest);

      const servers: Server[] = [
        { system: "tug", url: tug.url, pid: tug.pid },
        { system: "reference", url: ref.url, pid: ref.pid },
      ];
      load.start();
      if (args.only.has("manifests")) raw["manifests"] = await measureManifests(samples, table, servers, images, upstream, p);
      if (args.only.has("blobs")) {
        raw["blobs"] = await measureBlobs(
          samples,
          table,
          [
            { system: "tug", url: tug.url, pid: tug.pid, blobUrl: tug.url + blobPath },
            { system: "reference", url: ref.url, pid: ref.pid, blobUrl: ref.url + blobPath },
            { system: "nginx", url: nginx.url, pid: nginx.pid, blobUrl: `${nginx.url}/blob` },
          ],
          p,
        );
      }
      load.stop();
      table.set("rss-run", "tug", peakRssBytes(tug.pid) / MiB);
      table.set("rss-run", "reference", peakRssBytes(ref.pid) / MiB);
      table.set("rss-run", "nginx", peakRssBytes(nginx.pid) / MiB);
      table.note("rss-run", "VmHWM after the manifest and blob runs; nginx: master + workers");
      await stopLongRunning();
    }

    load.start();
    if (args.only.has("pulls")) raw["pulls"] = await measurePulls(samples, table, images, upstream, link, p, args);
    if (args.only.has("cold-gets")) raw["coldGets"] = await measureColdGets(samples, table, images, upstream, link, p, args);
    load.stop();
  } finally {
    for (const stop of cleanups.reverse()) await stop().catch((err: unknown) => log(`cleanup: ${String(err)}`));
  }
  raw["rounds"] = samples.fill(table);

  const rows = table.rows();
  const markdown = renderMarkdown(rows);
  const machine = machineSummary();
  const seconds = (Date.now() - started.getTime()) / 1000;
  const otherCores = load.otherCores;
  const header = [
    `# tug benchmark, ${started.toISOString()}${args.quick ? " (quick mode: small sizes, one short round — a smoke test, not figures to compare)" : ""}`,
    "",
    `Machine: ${machine.cpus} × ${machine.model}, ${machine.memGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}. ` +
      `Other processes used ${otherCores.toFixed(2)} of ${machine.cpus} cores on average while the bench measured. Bench took ${seconds.toFixed(0)} s.`,
    "",
    `Everything on 127.0.0.1: the upstream is Debian's docker-registry with generated images; tug is \`node dist/cli.js serve\` with its default config; ` +
      `the reference is Debian's docker-registry (distribution 2.8) in proxy mode; nginx (Debian's package, sendfile on) serves tug's cached file of the big layer. ` +
      `Each figure is the median of ${p.rounds} rounds (pulls and cold GETs: ${p.freshRounds}), alternating between the systems; every run is in the JSON file.`,
    "",
  ].join("\n");
  const document = `${header}\n${markdown}\n`;
  process.stdout.write(`\n${markdown}\n\n`);
  mkdirSync(args.out, { recursive: true });
  const base = join(args.out, `${stamp(started)}${args.quick ? "-quick" : ""}`);
  writeFileSync(`${base}.md`, document);
  writeFileSync(
    `${base}.json`,
    JSON.stringify({ date: started.toISOString(), mode: args.quick ? "quick" : "full", machine, otherCores, seconds, profile: p, rows, raw }, null, 2) + "\n",
  );
  log(`wrote ${base}.md and ${base}.json`);

  // The replica bench (issue 3) runs after ours when it is there.
  const replicas = join(ROOT, "bench", "replicas.ts");
  if (args.replicas && existsSync(replicas)) {
    log("running bench/replicas.ts");
    const child = spawnTied(process.execPath, ["--import", "tsx", replicas, ...(args.quick ? ["--quick"] : []), "--out", args.out], { stdio: "inherit" });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    if (code !== 0) log(`bench/replicas.ts failed (exit ${code}); the table above is complete`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
