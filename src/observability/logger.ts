// The process logger: pino JSON lines, or pino-pretty's readable lines on a
// terminal (log.format: auto | json | pretty). Secrets never reach it: the
// config keeps passwords non-enumerable, nothing logs Authorization headers or
// query strings, and the redact paths below catch a stray one anyway.
import { pino, type DestinationStream, type Logger } from "pino";
import { PinoPretty } from "pino-pretty";
import type { LogFormat } from "../config/index.js";

export interface LoggerOptions {
  /** Default "json". "auto" means pretty when the destination is a terminal. */
  readonly format?: LogFormat;
  /** Default process.stdout. */
  readonly destination?: NodeJS.WritableStream;
}

const REDACT = [
  "*.authorization",
  "*.Authorization",
  "*.password",
  "*.token",
  "*.access_token",
  "*.refresh_token",
  "headers.authorization",
  "headers.cookie",
  "*.headers.authorization",
  "*.headers.cookie",
];

/** Whether a log format resolves to pretty output on this destination. */
export function isPretty(format: LogFormat | undefined, destination: NodeJS.WritableStream): boolean {
  if (format === "pretty") return true;
  if (format === "auto") return (destination as { isTTY?: boolean }).isTTY === true;
  return false;
}

/** Access-log lines wait at most this long (or until this many bytes are pending) before they are written. */
export const ACCESS_LOG_FLUSH_MS = 250;
export const ACCESS_LOG_BUFFER_BYTES = 16 * 1024;

/**
 * Two doors onto one buffered writer: `relaxed` lines (the access log) wait
 * until ACCESS_LOG_BUFFER_BYTES are pending or ACCESS_LOG_FLUSH_MS has
 * passed; an `urgent` line (everything else: start-up, warnings, errors) is
 * written at once, after whatever access lines were waiting, so lines keep
 * their order. One write per line was a fifth of tug's CPU on cached
 * manifests (bench profile, issue 7). Lines go to `out` (process.stdout,
 * whose writes to a pipe or file are synchronous), so nothing changes about
 * how they are written, only how often; what is pending is written when the
 * process exits.
 */
export function bufferedLineSink(out: NodeJS.WritableStream): { urgent: DestinationStream; relaxed: DestinationStream; close(): void } {
  let lines: string[] = [];
  let bytes = 0;
  const flush = (): void => {
    if (lines.length === 0) return;
    const text = lines.length === 1 ? lines[0]! : lines.join("");
    lines = [];
    bytes = 0;
    out.write(text);
  };
  const timer = setInterval(flush, ACCESS_LOG_FLUSH_MS);
  timer.unref();
  process.once("exit", flush);
  return {
    urgent: {
      write(line: string): void {
        lines.push(line);
        flush();
      },
    },
    relaxed: {
      write(line: string): void {
        lines.push(line);
        bytes += line.length;
        if (bytes >= ACCESS_LOG_BUFFER_BYTES) flush();
      },
    },
    close(): void {
      clearInterval(timer);
      process.off("exit", flush);
      flush();
    },
  };
}

/** The access log's logger for each logger createLogger gave a buffered one. */
const accessLoggers = new WeakMap<Logger, Logger>();

/**
 * The logger for access lines: createLogger's buffered one, or else logger
 * itself without redaction. The access line's fields are fixed and hold no
 * secret (the path has no query string, the request id is checked), and with
 * wildcards the redact paths walked every key of every line: a tenth of the
 * CPU of a cached manifest request (bench profile, issue 7).
 */
export function accessLoggerOf(logger: Logger): Logger {
  return accessLoggers.get(logger) ?? logger.child({}, { redact: [] });
}

export function createLogger(level: string, opts: LoggerOptions | NodeJS.WritableStream = {}): Logger {
  const { format, destination = process.stdout } = "write" in opts ? { destination: opts } : opts;
  const options = { level, base: { service: "tug" }, redact: { paths: REDACT, censor: "[redacted]" } };
  if (isPretty(format, destination)) {
    // pino-pretty as a stream in this thread (no worker transport): lines are
    // written in order with the JSON ones and flushed before process.exit.
    const pretty = PinoPretty({
      destination,
      colorize: (destination as { isTTY?: boolean }).isTTY === true,
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "pid,hostname,service",
      singleLine: true,
      sync: true,
    });
    return pino(options, pretty);
  }
  if (destination === process.stdout) {
    const { urgent, relaxed } = bufferedLineSink(destination);
    const logger = pino(options, urgent);
    accessLoggers.set(logger, pino({ level, base: options.base }, relaxed));
    return logger;
  }
  return pino(options, destination);
}

export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
