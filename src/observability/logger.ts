// The process logger: pino JSON lines. Secrets never reach it: the config keeps
// passwords non-enumerable and nothing logs Authorization headers.
import { pino, type Logger } from "pino";

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: "tug" },
      redact: { paths: ["*.authorization", "*.Authorization", "*.password", "headers.authorization"], censor: "[redacted]" },
    },
    destination ?? process.stdout,
  );
}

export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
