import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import {
  ConfigError,
  configReference,
  defaultConfigFile,
  envKey,
  loadConfig,
  parseConfig,
  unknownEnvOverrides,
} from "../../src/config/load.js";
import { parseDuration, parseSize } from "../../src/config/units.js";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "tug-config-test-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

function fail(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

const minimal = () => ({ upstreams: { "docker.io": { url: "https://registry-1.docker.io", default: true } } });

describe("envKey", () => {
  it.each([
    ["cache.tagTTL", "TUG_CACHE_TAG_TTL"],
    ["dataDir", "TUG_DATA_DIR"],
    ["redis.url", "TUG_REDIS_URL"],
    ["log.level", "TUG_LOG_LEVEL"],
    ["listen", "TUG_LISTEN"],
    ["cache.staleIfError", "TUG_CACHE_STALE_IF_ERROR"],
    ["cache.memoryBytes", "TUG_CACHE_MEMORY_BYTES"],
    ["timeouts.fill", "TUG_TIMEOUTS_FILL"],
  ])("%s → %s", (path, name) => {
    expect(envKey(path)).toBe(name);
  });
});

describe("TUG_* overrides", () => {
  it("override every scalar key outside upstreams/auth", () => {
    const c = parseConfig(minimal(), {
      TUG_LISTEN: "127.0.0.1:0",
      TUG_DATA_DIR: "/srv/tug",
      TUG_REDIS_URL: "redis://redis:6379",
      TUG_REDIS_PREFIX: "x:",
      TUG_CACHE_TAG_TTL: "1m",
      TUG_CACHE_STALE_IF_ERROR: "0",
      TUG_CACHE_MAX_SIZE: "1GiB",
      TUG_CACHE_MEMORY_BYTES: "1MiB",
      TUG_TIMEOUTS_CONNECT: "1s",
      TUG_TIMEOUTS_HEADERS: "2s",
      TUG_TIMEOUTS_BODY: "3s",
      TUG_TIMEOUTS_FILL: "4s",
      TUG_LOG_LEVEL: "debug",
    });
    expect(c.listen).toEqual({ host: "127.0.0.1", port: 0 });
    expect(c.dataDir).toBe("/srv/tug");
    expect(c.redis).toEqual({ url: "redis://redis:6379", prefix: "x:", lease: 10_000 });
    expect(c.cache).toEqual({ tagTTL: 60_000, staleIfError: 0, maxSize: 2 ** 30, memoryBytes: 2 ** 20 });
    expect(c.timeouts).toEqual({ connect: 1_000, headers: 2_000, body: 3_000, fill: 4_000 });
    expect(c.log.level).toBe("debug");
  });

  it("win over the file's value", () => {
    const c = parseConfig({ ...minimal(), cache: { tagTTL: "10m" }, redis: { url: "redis://a:1" } }, { TUG_CACHE_TAG_TTL: "30s", TUG_REDIS_URL: "" });
    expect(c.cache.tagTTL).toBe(30_000);
    expect(c.redis.url).toBe("");
  });

  it("name both the key and the variable when bad", () => {
    const err = fail(() => parseConfig(minimal(), { TUG_CACHE_TAG_TTL: "5 minutes" }));
    expect(err.key).toBe("cache.tagTTL");
    expect(err.message).toBe('cache.tagTTL (from TUG_CACHE_TAG_TTL): "5 minutes" is not a duration (use e.g. 30s, 5m, 7d)');
    const level = fail(() => parseConfig(minimal(), { TUG_LOG_LEVEL: "loud" }));
    expect(level.message).toMatch(/^log\.level \(from TUG_LOG_LEVEL\): "loud" is not one of/);
  });

  it("ignore variables that match no key, and TUG_CONFIG", () => {
    const env = { TUG_CACHE_TAGTTL: "nonsense", TUG_UPSTREAMS: "x", TUG_CONFIG: "/nowhere.yaml", TUG_CACHE: "x" };
    expect(parseConfig(minimal(), env).cache.tagTTL).toBe(300_000);
    expect(unknownEnvOverrides(env)).toEqual(["TUG_CACHE", "TUG_CACHE_TAGTTL", "TUG_UPSTREAMS"]);
    expect(unknownEnvOverrides({ TUG_LOG_LEVEL: "info", TUG_CONFIG: "x", HOME: "/" })).toEqual([]);
  });

  it("do not reach upstreams or auth", () => {
    const c = parseConfig(minimal(), { TUG_UPSTREAMS_DOCKER_IO_URL: "https://evil.example", TUG_AUTH_USERS: "{}" });
    expect(c.upstreams["docker.io"]?.url).toBe("https://registry-1.docker.io");
  });
});

describe("loadConfig", () => {
  it("loads the embedded default file", () => {
    const c = loadConfig({ env: {} });
    expect(Object.keys(c.upstreams)).toEqual(["docker.io", "ghcr.io", "quay.io", "registry.k8s.io"]);
    expect(c.defaultUpstream).toBe("docker.io");
    expect(c.upstreams["docker.io"]?.url).toBe("https://registry-1.docker.io");
    expect(c.upstreams["docker.io"]?.dockerHub).toBe(true);
    expect(c.listen).toEqual({ host: "0.0.0.0", port: 5000 });
    expect(c.redis.url).toBe("");
    expect(c.cache.maxSize).toBe(50 * 2 ** 30);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("applies env overrides to the embedded default", () => {
    expect(loadConfig({ env: { TUG_LISTEN: ":0" } }).listen).toEqual({ host: "0.0.0.0", port: 0 });
  });

  it("uses TUG_CONFIG, and an explicit file wins over it", () => {
    const fromEnv = write("env.yaml", 'upstreams:\n  ghcr.io: { url: "https://ghcr.io" }\n');
    const explicit = write("explicit.yaml", 'upstreams:\n  quay.io: { url: "https://quay.io" }\n');
    expect(Object.keys(loadConfig({ env: { TUG_CONFIG: fromEnv } }).upstreams)).toEqual(["ghcr.io"]);
    expect(Object.keys(loadConfig({ file: explicit, env: { TUG_CONFIG: fromEnv } }).upstreams)).toEqual(["quay.io"]);
    expect(Object.keys(loadConfig({ file: explicit, env: {} }).upstreams)).toEqual(["quay.io"]);
  });

  it("reads durations, sizes and nested sections from YAML", () => {
    const file = write(
      "full.yaml",
      [
        'listen: "[::]:5000"',
        "dataDir: /tmp/tug-data",
        "cache:",
        "  tagTTL: 0",
        "  maxSize: 10GiB",
        "timeouts:",
        "  body: 1m30s",
        "log:",
        "upstreams:",
        "  localhost:5001:",
        "    url: http://localhost:5001",
        "    default: true",
        "  registry.example.com:",
        "    url: https://registry.example.com",
        "    username: ci-bot",
        "    passwordEnv: EXAMPLE_REGISTRY_TOKEN",
        "",
      ].join("\n"),
    );
    const c = loadConfig({ file, env: { EXAMPLE_REGISTRY_TOKEN: "tok" } });
    expect(c.listen).toEqual({ host: "::", port: 5000 });
    expect(c.cache.tagTTL).toBe(0);
    expect(c.cache.maxSize).toBe(10 * 2 ** 30);
    expect(c.timeouts.body).toBe(90_000);
    expect(c.log.level).toBe("info");
    expect(c.defaultUpstream).toBe("localhost:5001");
    expect(c.upstreams["registry.example.com"]?.password).toBe("tok");
    expect(JSON.stringify(c)).not.toContain("tok\"");
  });

  it("names the file for a missing file", () => {
    const missing = join(dir, "missing.yaml");
    const err = fail(() => loadConfig({ file: missing, env: {} }));
    expect(err.key).toBe("config");
    expect(err.file).toBe(missing);
    expect(err.message).toBe(`config: cannot read config file ${missing}: no such file`);
    const viaEnv = fail(() => loadConfig({ env: { TUG_CONFIG: missing } }));
    expect(viaEnv.message).toContain("(from TUG_CONFIG)");
  });

  it("names the file for a directory", () => {
    const sub = join(dir, "a-directory");
    mkdirSync(sub, { recursive: true });
    expect(fail(() => loadConfig({ file: sub, env: {} })).message).toMatch(/^config: cannot read config file .*a-directory: is a directory$/);
  });

  it("names the file and line of a YAML syntax error", () => {
    const file = write("broken.yaml", 'listen: ":5000"\ncache:\n  tagTTL: 5m\n maxSize: 1GiB\nupstreams: {}\n');
    const err = fail(() => loadConfig({ file, env: {} }));
    expect(err.key).toBe("config");
    expect(err.file).toBe(file);
    expect(err.message).toMatch(new RegExp(`^config: ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:4:\\d+: YAML syntax error: `));
  });

  it("rejects duplicate keys as a syntax error with a line", () => {
    const file = write("dup.yaml", "listen: ':1'\nlisten: ':2'\n");
    expect(fail(() => loadConfig({ file, env: {} })).message).toContain(`${file}:2:1: YAML syntax error`);
  });

  it("rejects a file whose top level is not a mapping", () => {
    const file = write("list.yaml", "- a\n- b\n");
    const err = fail(() => loadConfig({ file, env: {} }));
    expect(err.key).toBe("config");
    expect(err.message).toBe(`config: ${file}: the top level must be a mapping of keys, got a list`);
  });

  it("reports schema problems by key, with the file attached", () => {
    const file = write("badkey.yaml", 'cache:\n  tagTTL: "5 minutes"\nupstreams:\n  docker.io: { url: "https://registry-1.docker.io" }\n');
    const err = fail(() => loadConfig({ file, env: {} }));
    expect(err.key).toBe("cache.tagTTL");
    expect(err.file).toBe(file);
    expect(err.message).toBe('cache.tagTTL: "5 minutes" is not a duration (use e.g. 30s, 5m, 7d)');
  });

  it("an empty file is missing its upstreams", () => {
    const file = write("empty.yaml", "# nothing here\n");
    expect(fail(() => loadConfig({ file, env: {} })).key).toBe("upstreams");
  });
});

describe("configReference", () => {
  it("lists every key once, with env names exactly for the overridable scalars", () => {
    const paths = configReference.map((e) => e.path);
    expect(new Set(paths).size).toBe(paths.length);
    const withEnv = configReference.filter((e) => e.env !== undefined).map((e) => e.path);
    expect(withEnv).toEqual([
      "listen",
      "dataDir",
      "redis.url",
      "redis.prefix",
      "redis.lease",
      "cache.tagTTL",
      "cache.staleIfError",
      "cache.maxSize",
      "cache.memoryBytes",
      "timeouts.connect",
      "timeouts.headers",
      "timeouts.body",
      "resilience.negativeTTL",
      "resilience.breakerFailures",
      "resilience.breakerCoolOff",
      "resilience.upstreamConcurrency",
      "resilience.manifestTimeout",
      "limits.clientHeadersTimeout",
      "limits.clientRequestTimeout",
      "limits.maxHeaderSize",
      "limits.shutdownGrace",
      "limits.diskHighWatermark",
      "limits.diskLowWatermark",
      "timeouts.fill",
      "log.level",
      "log.format",
    ]);
    for (const e of configReference) {
      if (e.env !== undefined) expect(e.env).toBe(envKey(e.path));
      expect(e.description.length).toBeGreaterThan(0);
    }
    for (const p of ["upstreams", "upstreams.<host>.url", "upstreams.<host>.default", "upstreams.<host>.username", "upstreams.<host>.passwordEnv", "upstreams.<host>.clientAuth", "upstreams.<host>.authRealms", "auth.users"]) {
      expect(paths).toContain(p);
    }
  });

  it("documents the defaults the schema applies", () => {
    const c = parseConfig(minimal(), {}) as unknown as Record<string, Record<string, unknown>>;
    const byPath = (p: string) => configReference.find((e) => e.path === p)?.default;
    expect(byPath("cache.tagTTL")).toBe("5m");
    expect(parseDuration(byPath("cache.tagTTL") ?? "")).toBe(c.cache?.tagTTL);
    expect(parseDuration(byPath("cache.staleIfError") ?? "")).toBe(c.cache?.staleIfError);
    expect(parseSize(byPath("cache.maxSize") ?? "")).toBe(c.cache?.maxSize);
    expect(parseSize(byPath("cache.memoryBytes") ?? "")).toBe(c.cache?.memoryBytes);
    for (const t of ["connect", "headers", "body", "fill"]) {
      expect(parseDuration(byPath(`timeouts.${t}`) ?? "")).toBe(c.timeouts?.[t]);
    }
    expect(byPath("log.level")).toBe(c.log?.level);
    expect(byPath("log.format")).toBe(c.log?.format);
    expect(byPath("redis.url")).toBe('""');
    expect(byPath("redis.prefix")).toBe(c.redis?.prefix);
    expect(byPath("upstreams.<host>.default")).toBe("false");
    expect(byPath("upstreams.<host>.authRealms")).toBe("[]");
    expect(byPath("upstreams")).toBeUndefined();
  });

  it("agrees with config/default.yaml", () => {
    const yaml = parseYaml(readFileSync(defaultConfigFile, "utf8")) as Record<string, unknown>;
    for (const e of configReference) {
      if (e.env === undefined) continue;
      const value = e.path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], yaml);
      expect(value === "" ? '""' : value, e.path).toBe(e.default);
    }
  });
});
