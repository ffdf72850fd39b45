import { request, Agent } from "undici";
import { readFileSync } from "node:fs";
const url = process.argv[2];
const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) / 1024;
const rss = () => process.memoryUsage().rss / 1048576;
const s = hwm();
const res = await request(url, { dispatcher: new Agent() });
let n = 0;
for await (const chunk of res.body) { n += chunk.length; }
console.log("drain only: start", s.toFixed(0), "hwm", hwm().toFixed(0), "growth", (hwm() - s).toFixed(0));
