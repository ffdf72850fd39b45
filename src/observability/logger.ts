// The process logger: pino JSON lines, or pino-pretty's readable lines on a
// terminal (log.format: auto | json | pretty). Secrets never reach it: the
// config keeps passwords non-enumerable, nothing logs Authorization headers or
// query strings, and the redact paths below catch a stray one anyway.
import { pino, type Logger } from "pino";
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
  return pino(options, destination);
}

export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
