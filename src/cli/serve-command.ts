// `tug serve [--config FILE] [--log-format auto|json|pretty | --pretty]`: what `npm start` runs.
import { ConfigError, LOG_FORMATS, loadConfig, type Config } from "../config/index.js";
import { main } from "../main.js";
import { UsageError, parseCommandLine } from "./args.js";
import type { CliIo } from "./cli-io.js";
import { configMessage } from "./data-dir.js";

export const SERVE_USAGE = "tug serve [--config FILE] [--log-format auto|json|pretty] [--pretty]";

/** The configuration serve would run with (flags applied as TUG_* overrides, so they win over the file and the env). */
export function serveConfig(args: string[], env: NodeJS.ProcessEnv): Config {
  const { values } = parseCommandLine<{ config?: string; "log-format"?: string; pretty?: boolean }>("serve", args, {
    config: { type: "string", short: "c" },
    "log-format": { type: "string" },
    pretty: { type: "boolean" },
  });
  const format = values.pretty ? "pretty" : values["log-format"];
  if (values.pretty && values["log-format"] !== undefined) throw new UsageError("serve: --pretty and --log-format cannot be used together");
  if (format !== undefined && !(LOG_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`serve: --log-format: ${JSON.stringify(format)} is not one of ${LOG_FORMATS.join(", ")}`);
  }
  if (values.config === "") throw new UsageError("serve: --config needs a file");
  try {
    return loadConfig({
      ...(values.config !== undefined ? { file: values.config } : {}),
      env: format !== undefined ? { ...env, TUG_LOG_FORMAT: format } : env,
    });
  } catch (err) {
    // A config error names its key; every problem gets its own line.
    if (err instanceof ConfigError) throw new UsageError(configMessage(err));
    throw err;
  }
}

export async function serveCommand(args: string[], io: CliIo): Promise<number> {
  await main(serveConfig(args, io.env));
  return 0;
}
