#!/usr/bin/env node
// The tug command: `tug serve [--config FILE]`.
import { ConfigError, loadConfig } from "./config/index.js";
import { main } from "./main.js";

const USAGE = "usage: tug serve [--config FILE]";

function fail(message: string): never {
  process.stderr.write(`tug: ${message}\n`);
  process.exit(2);
}

export async function run(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "--help" || command === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (command !== "serve") fail(`unknown command "${command}" (${USAGE})`);
  let file: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "--config" || a === "-c") {
      file = rest[++i];
      if (!file) fail("--config needs a file");
    } else if (a.startsWith("--config=")) {
      file = a.slice("--config=".length);
    } else {
      fail(`unknown argument "${a}" (${USAGE})`);
    }
  }
  let config;
  try {
    config = loadConfig({ file });
  } catch (err) {
    if (err instanceof ConfigError) fail(`config: ${err.message}`);
    throw err;
  }
  await main(config);
}

run(process.argv.slice(2)).catch((err: unknown) => {
  fail(err instanceof Error ? err.message : String(err));
});
