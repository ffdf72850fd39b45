// Access-log lines are written in batches (one write per line was a fifth of
// tug's CPU on cached manifests, issue 7); every other line is written at once,
// after the access lines before it; nothing pending is lost when tug exits.
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { Writable } from "node:stream";
import { promisify } from "node:util";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ACCESS_LOG_BUFFER_BYTES, ACCESS_LOG_FLUSH_MS, bufferedLineSink } from "../../src/observability/logger.js";

const ROOT = resolve(import.meta.dirname, "..", "..");

/** A destination that records each write it gets. */
function recorder(): { out: Writable; writes: string[] } {
  const writes: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk.toString());
      cb();
    },
  });
  return { out, writes };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("the buffered line sink", () => {
  it("holds access lines until ACCESS_LOG_BUFFER_BYTES are pending, then writes them in one go, in order", () => {
    const { out, writes } = recorder();
    const sink = bufferedLineSink(out);
    const line = (i: number): string => `{"msg":"request","i":${String(i).padStart(4, "0")},"pad":"${"x".repeat(100)}"}\n`;
    const perBuffer = Math.ceil(ACCESS_LOG_BUFFER_BYTES / line(0).length);
    for (let i = 0; i < perBuffer - 1; i++) sink.relaxed.write(line(i));
    expect(writes).toEqual([]);
    sink.relaxed.write(line(perBuffer - 1));
    expect(writes.length).toBe(1);
    expect(writes[0]).toBe(Array.from({ length: perBuffer }, (_, i) => line(i)).join(""));
    sink.close();
  });

  it("writes any other line at once, after the access lines waiting before it", () => {
    const { out, writes } = recorder();
    const sink = bufferedLineSink(out);
    sink.relaxed.write("a1\n");
    sink.relaxed.write("a2\n");
    sink.urgent.write("warn\n");
    expect(writes).toEqual(["a1\na2\nwarn\n"]);
    sink.urgent.write("error\n");
    expect(writes).toEqual(["a1\na2\nwarn\n", "error\n"]);
    sink.close();
  });

  it("writes waiting access lines after ACCESS_LOG_FLUSH_MS, and on close", () => {
    vi.useFakeTimers();
    const { out, writes } = recorder();
    const sink = bufferedLineSink(out);
    sink.relaxed.write("a1\n");
    vi.advanceTimersByTime(ACCESS_LOG_FLUSH_MS - 1);
    expect(writes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(writes).toEqual(["a1\n"]);
    vi.advanceTimersByTime(10 * ACCESS_LOG_FLUSH_MS);
    expect(writes).toEqual(["a1\n"]);
    sink.relaxed.write("a2\n");
    sink.close();
    expect(writes).toEqual(["a1\n", "a2\n"]);
  });

  it("tug's stdout logger: a burst of access lines takes a few writes, keeps its order, and is all there when the process exits", async () => {
    const script = `
      const { createLogger, accessLoggerOf } = await import("./src/observability/logger.ts");
      let writes = 0;
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = (...args) => { writes++; return write(...args); };
      const logger = createLogger("info");
      const access = accessLoggerOf(logger);
      for (let i = 0; i < 100; i++) access.info({ i }, "request");
      logger.warn("upstream down");
      for (let i = 100; i < 105; i++) access.info({ i }, "request");
      process.on("exit", () => process.stderr.write(String(writes)));
      process.exit(0);
    `;
    const env = { ...process.env };
    delete env["NODE_OPTIONS"];
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { cwd: ROOT, env });
    const lines = stdout.trim().split("\n").map((l) => JSON.parse(l) as { msg: string; i?: number; level: number });
    expect(lines.length).toBe(106);
    expect(lines.slice(0, 100).map((l) => l.i)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(lines[100]).toMatchObject({ msg: "upstream down", level: 40 });
    expect(lines.slice(101).map((l) => l.i)).toEqual([100, 101, 102, 103, 104]);
    // Unbuffered, this was 106 writes.
    expect(Number(stderr.trim().split("\n").at(-1))).toBeLessThanOrEqual(4);
  });
});
