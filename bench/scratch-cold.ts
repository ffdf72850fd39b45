// scratch: cold GET timings through the throttled link: direct vs fresh tug
import { startRegistry } from "../test/helpers/registry.js";
import { seedBenchImages } from "./lib/fixtures.js";
import { startTugServer } from "./lib/tug-server.js";
import { startThrottledLink } from "./lib/throttled-link.js";
import { coldGets } from "./lib/cold-gets.js";
import { peakRssBytes } from "./lib/proc-stats.js";
const MiB = 1 << 20;
const size = Number(process.env.SIZE ?? 256) * MiB;
const N = Number(process.env.N ?? 1);
const upstream = await startRegistry();
const images = await seedBenchImages(upstream.directUrl, { bigLayerBytes: size, coldBlobBytes: 1 << 20 });
const link = await startThrottledLink({ host: "127.0.0.1", port: Number(new URL(upstream.url).port) }, 100 * MiB);
const path = `/v2/bench/big/blobs/${images.big.layerDigest}`;
for (let round = 0; round < Number(process.env.ROUNDS ?? 3); round++) {
  const d = await coldGets(link.url + path, 1, images.big.layerSize);
  const tug = await startTugServer({ upstream: link.url, ...(process.env.PROF ? { cpuProfDir: process.env.PROF } : {}) });
  if (process.env.WAIT) { console.log("PID", tug.pid); await new Promise((r) => setTimeout(r, 3000)); }
  const t = await coldGets(tug.url + path, N, images.big.layerSize);
  const rss = peakRssBytes(tug.pid) / MiB;
  await tug.stop();
  console.log(`direct ${d.allDoneSeconds.toFixed(3)}s ttfb ${(d.slowestFirstByteSeconds*1000).toFixed(0)}ms | tug x${N} ${t.allDoneSeconds.toFixed(3)}s ttfb ${(t.slowestFirstByteSeconds*1000).toFixed(0)}ms failed ${t.failed} | ratio ${(t.allDoneSeconds/d.allDoneSeconds).toFixed(3)} rss ${rss.toFixed(0)}MiB`);
}
await link.close(); await upstream.stop();
process.exit(0);
