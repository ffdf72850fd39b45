import { request, Agent } from "undici";
import { open } from "node:fs/promises";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
const url = process.argv[2];
const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) / 1024;
const rss = () => process.memoryUsage().rss / 1048576;
console.log("start rss", rss().toFixed(0), "hwm", hwm().toFixed(0));
const res = await request(url, { dispatcher: new Agent() });
const fh = await open("/tmp/exp/undici.out", "w");
const hash = createHash("sha256");
let n = 0;
for await (const chunk of res.body) { hash.update(chunk); await fh.write(chunk, 0, chunk.length, n); n += chunk.length; }
await fh.close();
console.log("bytes", n, "end rss", rss().toFixed(0), "hwm", hwm().toFixed(0));
