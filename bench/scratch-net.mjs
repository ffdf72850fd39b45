import { connect } from "node:net";
import { readFileSync } from "node:fs";
const u = new URL(process.argv[2]);
const hwm = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) / 1024;
const s = hwm();
const sock = connect(Number(u.port), u.hostname, () => sock.write(`GET ${u.pathname} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
let n = 0;
sock.on("data", (c) => { n += c.length; });
sock.on("end", () => console.log("net drain: bytes", n, "start", s.toFixed(0), "hwm", hwm().toFixed(0), "growth", (hwm() - s).toFixed(0)));
