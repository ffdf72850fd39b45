// Command-line parsing for the tug command: node's util.parseArgs with strict
// options, its errors turned into one-line reasons (UsageError → exit 2).
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A bad command line: printed as one line, exit status 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export interface Parsed<V> {
  readonly values: V;
  readonly positionals: string[];
}

/** Parses args against options; unknown options, missing values and stray positionals are UsageErrors. */
export function parseCommandLine<V = Record<string, string | boolean | string[] | boolean[] | undefined>>(
  command: string,
  args: string[],
  options: OptionSpec,
  opts: { positionals?: boolean } = {},
): Parsed<V> {
  try {
    const r = parseArgs({ args, options, allowPositionals: opts.positionals ?? false, strict: true });
    return { values: r.values as V, positionals: r.positionals };
  } catch (err) {
    throw new UsageError(`${command}: ${describeParseError(err, options)}`);
  }
}

function describeParseError(err: unknown, options: OptionSpec): string {
  const e = err as { code?: string; message?: string };
  const msg = e.message ?? String(err);
  const quoted = /'([^']+)'/.exec(msg)?.[1];
  switch (e.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option ${quoted ?? msg}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
      // "Option '-s, --server <value>' argument missing", "Option '--json' does not take an argument",
      // "Option '--server' argument is ambiguous" (its value looked like an option).
      const name = /--[a-z][a-z0-9-]*/.exec(msg)?.[0] ?? quoted ?? "";
      if (options[name.slice(2)]?.type === "boolean") return `${name} takes no value`;
      return `${name} needs a value`;
    }
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument ${quoted ?? msg}`;
    default:
      return msg.split("\n")[0] ?? msg;
  }
}

/** The last value of an option that may be given several times (for "string" options declared multiple). */
export function lastValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.at(-1) : v;
}
