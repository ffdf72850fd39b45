// Which data directory an offline command (ls, prune) works on: --data-dir,
// else the configuration's dataDir (--config FILE, TUG_CONFIG, the embedded
// default; TUG_DATA_DIR overrides as for serve).
import { ConfigError, loadConfig, type Config } from "../config/index.js";
import { upstreamDir } from "../cache/layout.js";
import { UsageError } from "./args.js";

export interface DataDirChoice {
  readonly dataDir: string;
  /** The loaded configuration, when the directory came from one. */
  readonly config: Config | undefined;
}

export function chooseDataDir(values: { "data-dir"?: string; config?: string }, env: NodeJS.ProcessEnv): DataDirChoice {
  if (values["data-dir"] !== undefined && values.config !== undefined) throw new UsageError("--data-dir and --config cannot be used together");
  if (values["data-dir"] !== undefined) {
    if (values["data-dir"] === "") throw new UsageError("--data-dir needs a directory");
    return { dataDir: values["data-dir"], config: undefined };
  }
  try {
    const config = loadConfig({ ...(values.config !== undefined ? { file: values.config } : {}), env });
    return { dataDir: config.dataDir, config };
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(configMessage(err));
    throw err;
  }
}

/** upstreamDir(host) → host for the configured upstreams (a directory name is otherwise shown as is). */
export function upstreamNames(config: Config | undefined): Map<string, string> {
  const names = new Map<string, string>();
  for (const host of Object.keys(config?.upstreams ?? {})) names.set(upstreamDir(host), host);
  return names;
}

/** A ConfigError as one line starting with "config:" (file problems already do; key problems get the prefix). */
export function configMessage(err: ConfigError): string {
  const text = err.message.replace(/\n/g, "; ");
  return text.startsWith("config:") ? text : `config: ${text}`;
}
