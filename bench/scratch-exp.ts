// scratch: start upstream + tug + nginx with the big image, print URLs, wait for SIGINT
import { startRegistry } from "../test/helpers/registry.js";
import { seedBenchImages } from "./lib/fixtures.js";
import { startTugServer } from "./lib/tug-server.js";
import { startNginx } from "./lib/nginx.js";
import { startReference } from "./lib/reference-proxy.js";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { startThrottledLink } from "./lib/throttled-link.js";
const MiB = 1 << 20;
const size = Number(process.env.SIZE ?? 256) * MiB;
const upstream = await startRegistry();
const images = await seedBenchImages(upstream.directUrl, { bigLayerBytes: size, coldBlobBytes: 1 << 20 });
const tug = await startTugServer({ upstream: upstream.url, ...(process.env.PROF ? { cpuProfDir: process.env.PROF } : {}) });
const ref = await startReference(upstream.url);
const path = `/v2/bench/big/blobs/${images.big.layerDigest}`;
for (const u of [tug.url, ref.url]) { for (let i = 0; i < 2; i++) { const r = await fetch(u + path); await r.arrayBuffer(); } }
const hex = images.big.layerDigest.slice(7);
const nginx = await startNginx(join(tug.dataDir, "blobs", "sha256", hex.slice(0, 2), hex));
const link = await startThrottledLink({ host: "127.0.0.1", port: Number(new URL(upstream.url).port) }, 100 * MiB);
const info = { link: link.url, upstream: upstream.url, bigPath: path, tug: tug.url + path, tugPid: tug.pid, ref: ref.url + path, refPid: ref.pid, nginx: nginx.url + "/blob", nginxPid: nginx.pid,
  tag: tug.url + "/v2/bench/multi/manifests/latest", digest: tug.url + `/v2/bench/layers/manifests/${images.layers.image.digest}`, refTag: ref.url + "/v2/bench/multi/manifests/latest" };
writeFileSync("/tmp/exp/info.json", JSON.stringify(info, null, 1));
console.log(JSON.stringify(info, null, 1));
process.on("SIGINT", async () => { await nginx.stop(); await tug.stop(); await ref.stop(); await upstream.stop(); process.exit(0); });
process.on("SIGTERM", async () => { await nginx.stop(); await tug.stop(); await ref.stop(); await upstream.stop(); process.exit(0); });
setInterval(() => {}, 1 << 30);
