// The configuration file's shape: the table of every key (type, default,
// description — the single source of defaults), the zod schema built from it
// that validates a parsed YAML object, and the transform into the resolved,
// deep-frozen Config the rest of tug reads.

import { isIP, isIPv6 } from "node:net";
import { resolve as resolvePath } from "node:path";
import { z } from "zod";
import { parseDuration, parseSize } from "./units.js";

export interface UpstreamConfig {
  /** The key clients name, e.g. "docker.io", "ghcr.io", "localhost:5001". */
  readonly host: string;
  /** Normalized origin, e.g. "https://registry-1.docker.io". */
  readonly url: string;
  readonly default: boolean;
  readonly username?: string;
  readonly passwordEnv?: string;
  /** Resolved from env[passwordEnv] at load time. Non-enumerable: never serialized or logged. */
  readonly password?: string;
  readonly clientAuth: boolean;
  readonly authRealms: readonly string[];
  /** True for "docker.io": one-segment names mean library/<name>. */
  readonly dockerHub: boolean;
}

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ["auto", "json", "pretty"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Config {
  readonly listen: { readonly host: string; readonly port: number };
  /** Absolute path. */
  readonly dataDir: string;
  /** url "" = no Redis (single replica). lease in ms. */
  readonly redis: { readonly url: string; readonly prefix: string; readonly lease: number };
  /** tagTTL, staleIfError in ms; maxSize, memoryBytes in bytes. */
  readonly cache: {
    readonly tagTTL: number;
    readonly staleIfError: number;
    readonly maxSize: number;
    readonly memoryBytes: number;
  };
  /** All in ms. */
  readonly timeouts: {
    readonly connect: number;
    readonly headers: number;
    readonly body: number;
    readonly fill: number;
  };
  readonly log: { readonly level: LogLevel; readonly format: LogFormat };
  /** Upstream-facing resilience: durations in ms, counts as integers. */
  readonly resilience: {
    readonly negativeTTL: number;
    readonly breakerFailures: number;
    readonly breakerCoolOff: number;
    readonly upstreamConcurrency: number;
    readonly manifestTimeout: number;
  };
  /** Client-facing limits and the disk budget's watermarks (fractions of cache.maxSize). */
  readonly limits: {
    readonly clientHeadersTimeout: number;
    readonly clientRequestTimeout: number;
    readonly maxHeaderSize: number;
    readonly shutdownGrace: number;
    readonly diskHighWatermark: number;
    readonly diskLowWatermark: number;
  };
  readonly upstreams: Readonly<Record<string, UpstreamConfig>>;
  /** Host of the upstream with default: true, if any. */
  readonly defaultUpstream: string | undefined;
  /** user → bcrypt hash. Empty = clients need no login. */
  readonly auth: { readonly users: Readonly<Record<string, string>> };
}

/** One row of the key table. `default` is the value as written in YAML. */
export interface ConfigKeySpec {
  readonly type: string;
  readonly default: string | boolean | readonly string[] | Readonly<Record<string, string>> | undefined;
  readonly required: boolean;
  /** Whether a TUG_* environment variable can override this key. */
  readonly env: boolean;
  readonly description: string;
}

/**
 * Every configuration key. The schema below takes its defaults from here, and
 * load.ts derives `configReference` (with env var names) from it, so the
 * documentation and the behaviour cannot drift apart. Per-upstream keys use
 * the placeholder `<host>`, per-user keys `<user>`.
 */
export const configKeys = {
  listen: {
    type: "host:port",
    default: "0.0.0.0:5000",
    required: false,
    env: true,
    description: 'Address to listen on: "0.0.0.0:5000", "[::]:5000", ":5000" (all IPv4 interfaces); port 0 picks a free port.',
  },
  dataDir: {
    type: "path",
    default: "./data",
    required: false,
    env: true,
    description: "Cache directory (blobs, manifests, tag records); relative paths are resolved against the working directory.",
  },
  "redis.url": {
    type: "redis URL",
    default: "",
    required: false,
    env: true,
    description: "redis:// or rediss:// URL for coordinating replicas that share dataDir; empty means a single replica.",
  },
  "redis.prefix": {
    type: "string",
    default: "tug:",
    required: false,
    env: true,
    description: "Prefix of every Redis key tug writes.",
  },
  "redis.lease": {
    type: "duration",
    default: "10s",
    required: false,
    env: true,
    description:
      "How long a replica's lock on an upstream fetch lasts unless renewed (it is renewed every third of it): a replica that dies mid-fetch is replaced by another after at most this long. Also the heartbeat by which replicas tell that another's temp files are abandoned.",
  },
  "cache.tagTTL": {
    type: "duration",
    default: "5m",
    required: false,
    env: true,
    description: "How long a tag → digest record is served without asking the upstream; 0 revalidates every time.",
  },
  "cache.staleIfError": {
    type: "duration",
    default: "7d",
    required: false,
    env: true,
    description: "How long past tagTTL a tag record may still be served when the upstream is down, times out, or answers 5xx/429.",
  },
  "cache.maxSize": {
    type: "size",
    default: "50GiB",
    required: false,
    env: true,
    description: "Disk budget for the cache; least recently used content is evicted past it.",
  },
  "cache.memoryBytes": {
    type: "size",
    default: "64MiB",
    required: false,
    env: true,
    description: "Size of the in-memory manifest cache; 0 disables it.",
  },
  "timeouts.connect": {
    type: "duration",
    default: "5s",
    required: false,
    env: true,
    description: "Upstream TCP/TLS connect timeout.",
  },
  "timeouts.headers": {
    type: "duration",
    default: "30s",
    required: false,
    env: true,
    description: "Upstream time to response headers.",
  },
  "timeouts.body": {
    type: "duration",
    default: "60s",
    required: false,
    env: true,
    description: "Longest idle gap between upstream body chunks.",
  },
  "resilience.negativeTTL": {
    type: "duration",
    default: "5s",
    required: false,
    env: true,
    description: "How long an upstream failure (unreachable, timeout, 5xx, 429) for one manifest or blob is remembered and answered without asking the upstream again; 0 disables.",
  },
  "resilience.breakerFailures": {
    type: "integer",
    default: "5",
    required: false,
    env: true,
    description: "Consecutive upstream failures after which that upstream is marked down (circuit breaker open) and not contacted for breakerCoolOff; 0 disables the breaker.",
  },
  "resilience.breakerCoolOff": {
    type: "duration",
    default: "30s",
    required: false,
    env: true,
    description: "How long an upstream stays marked down before one trial request is let through.",
  },
  "resilience.upstreamConcurrency": {
    type: "integer",
    default: "32",
    required: false,
    env: true,
    description: "Most requests in flight to one upstream at once (a blob download counts until its body ends); more wait in a queue, none fail.",
  },
  "resilience.manifestTimeout": {
    type: "duration",
    default: "30s",
    required: false,
    env: true,
    description: "Longest an upstream manifest fetch may take in total (headers and body), so a trickling upstream fails fast.",
  },
  "limits.clientHeadersTimeout": {
    type: "duration",
    default: "30s",
    required: false,
    env: true,
    description: "Time a client has to send its request headers before the connection is closed (slowloris).",
  },
  "limits.clientRequestTimeout": {
    type: "duration",
    default: "60s",
    required: false,
    env: true,
    description: "Time a client has to send its whole request (not the response) before the connection is closed.",
  },
  "limits.maxHeaderSize": {
    type: "size",
    default: "16KiB",
    required: false,
    env: true,
    description: "Largest request header block accepted; larger requests get 431.",
  },
  "limits.shutdownGrace": {
    type: "duration",
    default: "25s",
    required: false,
    env: true,
    description: "On SIGTERM, how long in-flight responses and blob fills may run before they are cut and tug exits.",
  },
  "limits.diskHighWatermark": {
    type: "percentage",
    default: "90%",
    required: false,
    env: true,
    description: "Eviction starts when cached content exceeds this share of cache.maxSize.",
  },
  "limits.diskLowWatermark": {
    type: "percentage",
    default: "80%",
    required: false,
    env: true,
    description: "Eviction removes least recently used content until cached content is at most this share of cache.maxSize.",
  },
  "timeouts.fill": {
    type: "duration",
    default: "30m",
    required: false,
    env: true,
    description: "Longest a blob cache fill may keep running after the client that started it has gone.",
  },
  "log.level": {
    type: LOG_LEVELS.join("|"),
    default: "info",
    required: false,
    env: true,
    description: "Log level.",
  },
  "log.format": {
    type: LOG_FORMATS.join("|"),
    default: "auto",
    required: false,
    env: true,
    description: "json: one JSON object per line; pretty: human-readable (pino-pretty); auto: pretty when stdout is a terminal, else json.",
  },
  upstreams: {
    type: "map of host → upstream",
    default: undefined,
    required: true,
    env: false,
    description: "Registries tug may contact, keyed by the host clients name (lowercase host[:port], e.g. docker.io, localhost:5001). At least one.",
  },
  "upstreams.<host>.url": {
    type: "URL",
    default: undefined,
    required: true,
    env: false,
    description: "The registry's http(s) origin, e.g. https://registry-1.docker.io (no path).",
  },
  "upstreams.<host>.default": {
    type: "boolean",
    default: false,
    required: false,
    env: false,
    description: "Serve requests that name no upstream (Docker registry-mirrors). At most one upstream; with none, such requests get NAME_UNKNOWN.",
  },
  "upstreams.<host>.username": {
    type: "string",
    default: undefined,
    required: false,
    env: false,
    description: "User for tug's own upstream credentials; requires passwordEnv.",
  },
  "upstreams.<host>.passwordEnv": {
    type: "env var name",
    default: undefined,
    required: false,
    env: false,
    description: "Name of the environment variable holding the password or token (never inline); must be set at start-up; requires username.",
  },
  "upstreams.<host>.clientAuth": {
    type: "boolean",
    default: false,
    required: false,
    env: false,
    description: "Relay clients' own credentials so they can pull private repositories.",
  },
  "upstreams.<host>.authRealms": {
    type: "list of URL or host",
    default: [],
    required: false,
    env: false,
    description: "Token realms allowed to receive credentials beyond the upstream's own registrable domain.",
  },
  "auth.users": {
    type: "map of user → bcrypt hash",
    default: {},
    required: false,
    env: false,
    description: "Basic-auth users for clients of tug (e.g. from htpasswd -nbB); empty means no login.",
  },
} as const satisfies Readonly<Record<string, ConfigKeySpec>>;

export type ConfigKeyPath = keyof typeof configKeys;

// ---------------------------------------------------------------------------
// Value parsers shared by the schema. Each throws an Error with a message that
// quotes the value; the schema turns it into an issue at the key's path.

/** Longest delay Node timers accept (setTimeout clamps larger values to 1ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

const HOST_LABEL = "[a-z0-9](?:[a-z0-9-]*[a-z0-9])?";
const HOSTNAME_RE = new RegExp(`^${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BCRYPT_RE = /^\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}$/;

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

/** "0.0.0.0:5000", "[::]:5000", ":5000", "localhost:0" → { host, port }. */
export function parseListen(s: string): { host: string; port: number } {
  const hint = `${JSON.stringify(s)} is not a listen address (use host:port, e.g. 0.0.0.0:5000, [::]:5000 or :5000)`;
  const text = s.trim();
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):([^:]*)$/.exec(text);
  if (m === null) throw new Error(hint);
  const [, v6, name] = m;
  const port = parsePort(m[3] ?? "");
  if (port === undefined) throw new Error(`${hint}: bad port`);
  if (v6 !== undefined) {
    if (!isIPv6(v6)) throw new Error(hint);
    return { host: v6, port };
  }
  const host = (name ?? "").toLowerCase();
  if (host === "") return { host: "0.0.0.0", port };
  if (isIP(host) === 0 && !HOSTNAME_RE.test(host)) throw new Error(hint);
  return { host, port };
}

/** A registry host as clients name it: lowercase host[:port], IPv4, or [IPv6][:port]. */
export function isRegistryHost(s: string): boolean {
  const m = /^(?:\[([^\]]+)\]|([^:[\]/]+))(?::(\d+))?$/.exec(s);
  if (m === null) return false;
  const [, v6, name, port] = m;
  if (port !== undefined) {
    const p = parsePort(port);
    if (p === undefined || p === 0) return false;
  }
  if (v6 !== undefined) return isIPv6(v6) && v6 === v6.toLowerCase();
  return name !== undefined && (isIP(name) === 4 || HOSTNAME_RE.test(name));
}

function parseUpstreamUrl(s: string): string {
  const q = JSON.stringify(s);
  let u: URL;
  try {
    u = new URL(s.trim());
  } catch {
    throw new Error(`${q} is not a URL (use e.g. https://ghcr.io)`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") {
    throw new Error(`${q} must be an http:// or https:// URL`);
  }
  if (u.username !== "" || u.password !== "") {
    throw new Error(`${q} must not contain credentials (use username and passwordEnv)`);
  }
  if (u.pathname !== "/" && u.pathname !== "") {
    throw new Error(`${q} must not have a path (give the registry's origin, e.g. ${u.origin})`);
  }
  if (u.search !== "" || u.hash !== "" || /[?#]/.test(s)) {
    throw new Error(`${q} must not have a query or fragment`);
  }
  return u.origin;
}

function parseRedisUrl(s: string): string {
  const text = s.trim();
  if (text === "") return "";
  const q = JSON.stringify(s);
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new Error(`${q} is not a URL (use e.g. redis://redis:6379, or "" for none)`);
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
    throw new Error(`${q} must be a redis:// or rediss:// URL (or "" for none)`);
  }
  return text;
}

function parseRealm(s: string): string {
  const text = s.trim();
  const q = JSON.stringify(s);
  if (text.includes("://")) {
    let u: URL;
    try {
      u = new URL(text);
    } catch {
      throw new Error(`${q} is not a URL or host name`);
    }
    if (u.protocol !== "https:" && u.protocol !== "http:") {
      throw new Error(`${q} must be an http:// or https:// URL or a host name`);
    }
    return text;
  }
  if (!isRegistryHost(text.toLowerCase())) {
    throw new Error(`${q} is not a URL or host name (use e.g. https://auth.example.com/token or auth.example.com)`);
  }
  return text.toLowerCase();
}

// ---------------------------------------------------------------------------
// Schema building blocks.

/** Runs `parse` on the value; a thrown Error becomes an issue with its message. */
function via<I, O>(input: z.ZodType<I>, parse: (v: I) => O) {
  return input.transform((v, ctx): O => {
    try {
      return parse(v);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: err instanceof Error ? err.message : String(err) });
      return z.NEVER;
    }
  });
}

/** A YAML scalar as text: durations and sizes may be written as bare numbers (`0`, `1024`). */
const scalarText = z.union([z.string(), z.number()]).transform((v) => String(v));

function duration(opts: { positive?: boolean; max?: number } = {}) {
  return via(scalarText, (s) => {
    const ms = parseDuration(s);
    if (opts.positive === true && ms === 0) throw new Error(`${JSON.stringify(s)}: must be greater than 0`);
    if (opts.max !== undefined && ms > opts.max) {
      throw new Error(`${JSON.stringify(s)}: must be at most ${opts.max}ms (about 24d)`);
    }
    return ms;
  });
}

function size(opts: { positive?: boolean } = {}) {
  return via(scalarText, (s) => {
    const bytes = parseSize(s);
    if (opts.positive === true && bytes === 0) throw new Error(`${JSON.stringify(s)}: must be greater than 0`);
    return bytes;
  });
}

/** A mapping that may also be written empty (`cache:` parses as null) or left out. */
function section<T extends z.ZodType>(schema: T, fallback: z.input<T>) {
  return z.preprocess((v) => (v === null ? undefined : v), schema.prefault(fallback));
}

const k = configKeys;

const listenSchema = via(scalarText, parseListen).prefault(k.listen.default);

const dataDirSchema = via(z.string(), (s) => {
  if (s.trim() === "") throw new Error("must not be empty");
  return resolvePath(process.cwd(), s);
}).prefault(k.dataDir.default);

const redisSchema = z.strictObject({
  url: via(z.string(), parseRedisUrl).prefault(k["redis.url"].default),
  prefix: z.string().prefault(k["redis.prefix"].default),
  // Renewal runs every third of it: below ~300 ms timers and Redis round trips would eat the margin.
  lease: duration({ max: MAX_TIMER_MS })
    .refine((ms) => ms >= 300, "must be at least 300ms")
    .prefault(k["redis.lease"].default),
});

const cacheSchema = z.strictObject({
  tagTTL: duration().prefault(k["cache.tagTTL"].default),
  staleIfError: duration().prefault(k["cache.staleIfError"].default),
  maxSize: size({ positive: true }).prefault(k["cache.maxSize"].default),
  memoryBytes: size().prefault(k["cache.memoryBytes"].default),
});

const timeout = () => duration({ positive: true, max: MAX_TIMER_MS });
const timeoutsSchema = z.strictObject({
  connect: timeout().prefault(k["timeouts.connect"].default),
  headers: timeout().prefault(k["timeouts.headers"].default),
  body: timeout().prefault(k["timeouts.body"].default),
  fill: timeout().prefault(k["timeouts.fill"].default),
});

function integer(opts: { min: number; max: number }) {
  return via(scalarText, (s) => {
    if (!/^\d+$/.test(s.trim())) throw new Error(`${JSON.stringify(s)} is not a whole number`);
    const n = Number(s.trim());
    if (n < opts.min || n > opts.max) throw new Error(`${JSON.stringify(s)}: must be between ${opts.min} and ${opts.max}`);
    return n;
  });
}

/** "90%" → 0.9. */
function percentage() {
  return via(scalarText, (s) => {
    const m = /^(\d{1,3}(?:\.\d+)?)\s*%$/.exec(s.trim());
    const n = m ? Number(m[1]) : NaN;
    if (!(n > 0 && n <= 100)) throw new Error(`${JSON.stringify(s)} is not a percentage between 0% and 100% (use e.g. 90%)`);
    return n / 100;
  });
}

const resilienceSchema = z.strictObject({
  negativeTTL: duration({ max: MAX_TIMER_MS }).prefault(k["resilience.negativeTTL"].default),
  breakerFailures: integer({ min: 0, max: 1_000_000 }).prefault(k["resilience.breakerFailures"].default),
  breakerCoolOff: timeout().prefault(k["resilience.breakerCoolOff"].default),
  upstreamConcurrency: integer({ min: 1, max: 100_000 }).prefault(k["resilience.upstreamConcurrency"].default),
  manifestTimeout: timeout().prefault(k["resilience.manifestTimeout"].default),
});

const limitsSchema = z
  .strictObject({
    clientHeadersTimeout: timeout().prefault(k["limits.clientHeadersTimeout"].default),
    clientRequestTimeout: timeout().prefault(k["limits.clientRequestTimeout"].default),
    maxHeaderSize: size({ positive: true }).prefault(k["limits.maxHeaderSize"].default),
    shutdownGrace: duration({ max: MAX_TIMER_MS }).prefault(k["limits.shutdownGrace"].default),
    diskHighWatermark: percentage().prefault(k["limits.diskHighWatermark"].default),
    diskLowWatermark: percentage().prefault(k["limits.diskLowWatermark"].default),
  })
  .superRefine((l, ctx) => {
    if (l.diskLowWatermark > l.diskHighWatermark) {
      ctx.addIssue({ code: "custom", path: ["diskLowWatermark"], message: "must not be above diskHighWatermark" });
    }
  });

const logSchema = z.strictObject({
  level: z.enum(LOG_LEVELS).prefault(k["log.level"].default),
  format: z.enum(LOG_FORMATS).prefault(k["log.format"].default),
});

const upstreamSchema = z.strictObject({
  url: via(z.string(), parseUpstreamUrl),
  default: z.boolean().prefault(k["upstreams.<host>.default"].default),
  username: z.string().min(1, "must not be empty").optional(),
  passwordEnv: z
    .string()
    .regex(ENV_NAME_RE, "must be an environment variable name (letters, digits, _), not the password itself")
    .optional(),
  clientAuth: z.boolean().prefault(k["upstreams.<host>.clientAuth"].default),
  authRealms: z
    .array(via(z.string(), parseRealm))
    .prefault([...k["upstreams.<host>.authRealms"].default]),
});

const usersSchema = z.record(z.string(), z.string()).superRefine((users, ctx) => {
  for (const [user, hash] of Object.entries(users)) {
    if (user === "" || user.includes(":")) {
      ctx.addIssue({ code: "custom", path: [user], message: "user names must be non-empty and contain no ':'" });
    } else if (!BCRYPT_RE.test(hash)) {
      ctx.addIssue({
        code: "custom",
        path: [user],
        message: `not a bcrypt hash (create one with: htpasswd -nbB ${user} PASSWORD)`,
      });
    }
  }
});

const authSchema = z.strictObject({
  users: section(usersSchema, { ...k["auth.users"].default }),
});

const HOST_KEY_MESSAGE =
  "not a registry host (use lowercase host[:port] without scheme or path, e.g. ghcr.io or localhost:5001)";

/** upstreams: keyed by registry host; resolves passwords and the default. */
function upstreamsSchema(env: NodeJS.ProcessEnv) {
  return z
    .record(
      z.string().refine(isRegistryHost, HOST_KEY_MESSAGE),
      z.preprocess((v) => (v === null ? {} : v), upstreamSchema),
    )
    .transform((raw, ctx) => {
      const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: "custom", path, message });
      const upstreams = nullProto<UpstreamConfig>();
      const defaults: string[] = [];
      const entries = Object.entries(raw);
      if (entries.length === 0) issue([], "at least one upstream is required");
      for (const [host, u] of entries) {
        if (u.default) defaults.push(host);
        if (u.username !== undefined && u.passwordEnv === undefined) {
          issue([host, "username"], "requires passwordEnv (the name of the environment variable holding the password)");
        }
        if (u.passwordEnv !== undefined && u.username === undefined) {
          issue([host, "passwordEnv"], "requires username");
        }
        let password: string | undefined;
        if (u.passwordEnv !== undefined) {
          password = env[u.passwordEnv];
          if (password === undefined || password === "") {
            issue(
              [host, "passwordEnv"],
              `environment variable ${u.passwordEnv} is ${password === undefined ? "not set" : "empty"}`,
            );
          }
        }
        const out: UpstreamConfig = {
          host,
          url: u.url,
          default: u.default,
          ...(u.username !== undefined ? { username: u.username } : {}),
          ...(u.passwordEnv !== undefined ? { passwordEnv: u.passwordEnv } : {}),
          clientAuth: u.clientAuth,
          authRealms: u.authRealms,
          dockerHub: host === "docker.io",
        };
        if (password !== undefined) {
          // Non-enumerable: JSON.stringify, util.inspect and object spread never see it.
          Object.defineProperty(out, "password", { value: password, enumerable: false, writable: false, configurable: false });
        }
        upstreams[host] = out;
      }
      for (const host of defaults.slice(1)) {
        issue(
          [host, "default"],
          `only one upstream can be the default (${defaults.join(", ")} all say default: true)`,
        );
      }
      return { upstreams, defaultUpstream: defaults[0] };
    });
}

/**
 * Maps keyed by user input (upstream hosts, user names) have no prototype, so
 * `config.upstreams["constructor"]` is undefined rather than Object's.
 */
function nullProto<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

/** Freezes an object graph in place, including non-enumerable own properties. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const key of Reflect.ownKeys(value)) {
      deepFreeze((value as Record<PropertyKey, unknown>)[key]);
    }
    Object.freeze(value);
  }
  return value;
}

/**
 * The schema of the YAML file (strict: unknown keys are errors), transforming
 * into the resolved, deep-frozen Config. `env` supplies the variables named by
 * upstreams' passwordEnv. Parse with `safeParse` and report issues by path.
 */
export function createConfigSchema(env: NodeJS.ProcessEnv = process.env) {
  return z
    .strictObject({
      listen: listenSchema,
      dataDir: dataDirSchema,
      redis: section(redisSchema, {}),
      cache: section(cacheSchema, {}),
      timeouts: section(timeoutsSchema, {}),
      resilience: section(resilienceSchema, {}),
      limits: section(limitsSchema, {}),
      log: section(logSchema, {}),
      upstreams: upstreamsSchema(env),
      auth: section(authSchema, {}),
    })
    .superRefine((c, ctx) => {
      // One Authorization header cannot carry both a login to tug and a client's upstream token.
      const upstreams = c.upstreams?.upstreams;
      const users = c.auth?.users;
      if (upstreams === undefined || users === undefined) return; // already reported
      const relaying = Object.values(upstreams).filter((u) => u.clientAuth).map((u) => u.host);
      if (Object.keys(users).length > 0 && relaying.length > 0) {
        ctx.addIssue({
          code: "custom",
          path: ["auth", "users"],
          message: `cannot be combined with clientAuth (set on ${relaying.join(", ")}): clients send one Authorization header, either a login to tug or their own upstream token`,
        });
      }
    })
    .transform(
      (c): Config =>
        deepFreeze<Config>({
          listen: c.listen,
          dataDir: c.dataDir,
          redis: c.redis,
          cache: c.cache,
          timeouts: c.timeouts,
          resilience: c.resilience,
          limits: c.limits,
          log: c.log,
          upstreams: c.upstreams.upstreams,
          defaultUpstream: c.upstreams.defaultUpstream,
          auth: { users: Object.assign(nullProto<string>(), c.auth.users) },
        }),
    );
}

export type ConfigSchema = ReturnType<typeof createConfigSchema>;
/** The file's shape before defaults and transforms (what YAML may contain). */
export type ConfigInput = z.input<ConfigSchema>;
