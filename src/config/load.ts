// Loading the configuration: pick the file (--config, TUG_CONFIG, or the
// embedded config/default.yaml), parse the YAML, apply TUG_* environment
// overrides, validate with the schema, and turn every problem into a
// ConfigError whose message starts with the key it is about.

import { readFileSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import { fileURLToPath } from "node:url";
import { LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { configKeys, createConfigSchema, type Config, type ConfigKeyPath, type ConfigKeySpec } from "./schema.js";

/** A configuration problem. `message` always starts with `key` (or "config" for file problems). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Dotted key path of the (first) problem, e.g. "cache.tagTTL"; "config" for file-level problems. */
  readonly key: string;
  /** The file being loaded, when there was one. */
  readonly file: string | undefined;

  constructor(key: string, message: string, options?: { file?: string; cause?: unknown }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.key = key;
    this.file = options?.file;
  }
}

/** "cache.tagTTL" → "TUG_CACHE_TAG_TTL", "dataDir" → "TUG_DATA_DIR". */
export function envKey(path: string): string {
  const words = path
    .split(".")
    .map((seg) => seg.replace(/([a-z0-9])([A-Z])/g, "$1_$2").replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2"));
  return `TUG_${words.join("_").toUpperCase()}`;
}

export interface ConfigReferenceEntry {
  /** Dotted key path; `<host>` / `<user>` stand for map keys. */
  readonly path: string;
  readonly type: string;
  /** The default as written in YAML (e.g. `5m`, `""`, `false`, `[]`); undefined when there is none. */
  readonly default: string | undefined;
  readonly required: boolean;
  /** The TUG_* variable that overrides this key, if any. */
  readonly env: string | undefined;
  readonly description: string;
}

function formatDefault(value: ConfigKeySpec["default"]): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string") return value === "" ? '""' : value;
  return JSON.stringify(value);
}

/** Every configuration key, for documentation (derived from the schema's key table). */
export const configReference: readonly ConfigReferenceEntry[] = Object.freeze(
  (Object.entries(configKeys) as [ConfigKeyPath, ConfigKeySpec][]).map(([path, spec]) =>
    Object.freeze({
      path,
      type: spec.type,
      default: formatDefault(spec.default),
      required: spec.required,
      env: spec.env ? envKey(path) : undefined,
      description: spec.description,
    }),
  ),
);

/** Keys that TUG_* variables may override, with their variable names. */
const ENV_OVERRIDES: readonly { path: string; variable: string }[] = configReference.flatMap((e) =>
  e.env !== undefined ? [{ path: e.path, variable: e.env }] : [],
);

/**
 * TUG_* variables in `env` that match no key (probably typos). They are
 * ignored by parseConfig; start-up may want to warn about them.
 */
export function unknownEnvOverrides(env: NodeJS.ProcessEnv = process.env): string[] {
  const known = new Set(ENV_OVERRIDES.map((o) => o.variable));
  known.add("TUG_CONFIG");
  return Object.keys(env)
    .filter((name) => name.startsWith("TUG_") && !known.has(name))
    .sort();
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Copies `raw` with TUG_* overrides applied; returns which paths came from which variable. */
function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, string> {
  const sources = new Map<string, string>();
  for (const { path, variable } of ENV_OVERRIDES) {
    const value = env[variable];
    if (value === undefined) continue;
    const segments = path.split(".");
    const leaf = segments.pop();
    if (leaf === undefined) continue;
    let target: Record<string, unknown> = raw;
    let reachable = true;
    for (const seg of segments) {
      const next = target[seg];
      if (next === undefined || next === null) {
        const created: Record<string, unknown> = {};
        target[seg] = created;
        target = created;
      } else if (isPlainObject(next)) {
        target = next;
      } else {
        reachable = false; // the section has the wrong type; the schema reports it
        break;
      }
    }
    if (!reachable) continue;
    target[leaf] = value;
    sources.set(path, variable);
  }
  return sources;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += out === "" ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const seg of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

function describe(v: unknown): string {
  if (v === null) return "nothing (null)";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}

const EXPECTED: Readonly<Record<string, string>> = {
  object: "a mapping",
  record: "a mapping",
  array: "a list",
  string: "a string",
  number: "a number",
  boolean: "true or false",
};

/** Known sibling keys of a path, from the key table ("upstreams.x.urll" → url, default, …). */
function knownKeysUnder(parent: readonly PropertyKey[]): string[] {
  const generic = parent.map((seg, i) =>
    i === 1 && parent[0] === "upstreams" ? "<host>" : String(seg),
  );
  const prefix = generic.length === 0 ? "" : `${generic.join(".")}.`;
  const keys = new Set<string>();
  for (const path of Object.keys(configKeys)) {
    if (!path.startsWith(prefix)) continue;
    const next = path.slice(prefix.length).split(".")[0];
    if (next !== undefined && next !== "" && next !== "<host>") keys.add(next);
  }
  return [...keys];
}

function suggestion(unknown: string, known: readonly string[]): string {
  const lower = unknown.toLowerCase().replace(/[-_]/g, "");
  const match = known.find((k) => k.toLowerCase() === lower);
  return match !== undefined ? ` (did you mean "${match}"?)` : "";
}

interface Problem {
  readonly key: string;
  readonly message: string;
}

function problemsFrom(issues: readonly z.core.$ZodIssue[], raw: unknown, sources: Map<string, string>): Problem[] {
  const problems: Problem[] = [];
  const label = (key: string) => {
    const variable = sources.get(key);
    return variable !== undefined ? `${key} (from ${variable})` : key;
  };
  for (const issue of issues) {
    if (issue.code === "unrecognized_keys") {
      const known = knownKeysUnder(issue.path);
      for (const name of issue.keys) {
        const key = formatPath([...issue.path, name]);
        problems.push({ key, message: `${key}: unknown key${suggestion(name, known)}` });
      }
      continue;
    }
    const key = formatPath(issue.path);
    const shown = key === "" ? "config" : key;
    let text: string;
    switch (issue.code) {
      case "invalid_type": {
        const value = valueAt(raw, issue.path);
        const expected = EXPECTED[issue.expected] ?? issue.expected;
        text = value === undefined ? `is required (${expected})` : `expected ${expected}, got ${describe(value)}`;
        break;
      }
      case "invalid_value":
        text = `${describe(valueAt(raw, issue.path))} is not one of ${issue.values.map(String).join(", ")}`;
        break;
      case "invalid_key":
        text = issue.issues[0]?.message ?? issue.message;
        break;
      case "invalid_union": {
        // Only scalarText (string | number) is a union: report it as a type error.
        text = `expected a string, got ${describe(valueAt(raw, issue.path))}`;
        break;
      }
      default:
        text = issue.message;
    }
    problems.push({ key: shown, message: `${label(shown)}: ${text}` });
  }
  return problems;
}

function parseWith(raw: unknown, env: NodeJS.ProcessEnv, file: string | undefined): Config {
  const at = file !== undefined ? { file } : {};
  if (raw === null || raw === undefined) raw = {};
  if (!isPlainObject(raw)) {
    const where = file !== undefined ? `${file}: ` : "";
    throw new ConfigError("config", `config: ${where}the top level must be a mapping of keys, got ${describe(raw)}`, at);
  }
  const copy = structuredClone(raw);
  const sources = applyEnv(copy, env);
  const result = createConfigSchema(env).safeParse(copy);
  if (result.success) return result.data;
  const problems = problemsFrom(result.error.issues, copy, sources);
  const first = problems[0] ?? { key: "config", message: `config: ${result.error.message}` };
  throw new ConfigError(first.key, problems.map((p) => p.message).join("\n"), { ...at, cause: result.error });
}

/**
 * Validates a parsed YAML object (after applying TUG_* overrides from `env`)
 * and returns the resolved, deep-frozen Config. Throws ConfigError; when
 * several keys are wrong, the message has one line per problem and `key` is
 * the first.
 */
export function parseConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  return parseWith(raw, env, undefined);
}

/** Absolute path of the embedded default configuration (config/default.yaml). */
export const defaultConfigFile: string = fileURLToPath(new URL("../../config/default.yaml", import.meta.url));

/**
 * Loads the configuration from `file` (the --config value), else
 * env.TUG_CONFIG, else the embedded config/default.yaml. Relative paths are
 * resolved against process.cwd(). Throws ConfigError.
 */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv } = {}): Config {
  const env = opts.env ?? process.env;
  let file: string;
  let via = "";
  if (opts.file !== undefined && opts.file !== "") {
    file = resolvePath(opts.file);
  } else if (env.TUG_CONFIG !== undefined && env.TUG_CONFIG !== "") {
    file = resolvePath(env.TUG_CONFIG);
    via = " (from TUG_CONFIG)";
  } else {
    file = defaultConfigFile;
  }

  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "is a directory"
          : code === "EACCES"
            ? "permission denied"
            : err instanceof Error
              ? err.message
              : String(err);
    throw new ConfigError("config", `config: cannot read config file ${file}${via}: ${reason}`, { file, cause: err });
  }

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const yamlError = doc.errors[0];
  if (yamlError !== undefined) {
    const { line, col } = lineCounter.linePos(yamlError.pos[0]);
    throw new ConfigError(
      "config",
      `config: ${file}:${line}:${col}${via}: YAML syntax error: ${yamlError.message}`,
      { file, cause: yamlError },
    );
  }
  return parseWith(doc.toJS(), env, file);
}
