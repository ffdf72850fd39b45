import { describe, it, expect } from "vitest";
import { inspect } from "node:util";
import { resolve } from "node:path";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import { isRegistryHost, parseListen } from "../../src/config/schema.js";

const HUB = { url: "https://registry-1.docker.io", default: true };
const minimal = () => ({ upstreams: { "docker.io": { ...HUB } } });

/** Runs parseConfig expecting a ConfigError and returns it. */
function fail(raw: unknown, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseConfig(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected parseConfig to throw");
}

function expectKey(err: ConfigError, key: string, message?: string | RegExp): void {
  expect(err.key).toBe(key);
  expect(err.message.startsWith(`${key}: `) || err.message.startsWith(`${key} (from `)).toBe(true);
  if (typeof message === "string") expect(err.message).toBe(message);
  else if (message !== undefined) expect(err.message).toMatch(message);
}

describe("defaults", () => {
  it("fills every key from a minimal file", () => {
    const c = parseConfig(minimal(), {});
    expect(c.listen).toEqual({ host: "0.0.0.0", port: 5000 });
    expect(c.dataDir).toBe(resolve(process.cwd(), "data"));
    expect(c.redis).toEqual({ url: "", prefix: "tug:", lease: 10_000 });
    expect(c.cache).toEqual({ tagTTL: 300_000, staleIfError: 604_800_000, maxSize: 50 * 2 ** 30, memoryBytes: 64 * 2 ** 20 });
    expect(c.timeouts).toEqual({ connect: 5_000, headers: 30_000, body: 60_000, fill: 1_800_000 });
    expect(c.log).toEqual({ level: "info", format: "auto" });
    expect(c.defaultUpstream).toBe("docker.io");
    expect({ ...c.auth.users }).toEqual({});
    expect({ ...c.upstreams["docker.io"] }).toEqual({
      host: "docker.io",
      url: "https://registry-1.docker.io",
      default: true,
      clientAuth: false,
      authRealms: [],
      dockerHub: true,
    });
  });

  it("treats empty sections (YAML `cache:`) as all defaults", () => {
    const c = parseConfig({ ...minimal(), redis: null, cache: null, timeouts: null, log: null, auth: null }, {});
    expect(c.cache.tagTTL).toBe(300_000);
    expect(c.redis.prefix).toBe("tug:");
  });

  it("allows zero default upstreams", () => {
    const c = parseConfig({ upstreams: { "ghcr.io": { url: "https://ghcr.io" } } }, {});
    expect(c.defaultUpstream).toBeUndefined();
    expect(c.upstreams["ghcr.io"]?.dockerHub).toBe(false);
  });

  it("reads every key", () => {
    const c = parseConfig(
      {
        listen: "127.0.0.1:0",
        dataDir: "/var/cache/tug",
        redis: { url: "rediss://user:pw@redis:6380/2", prefix: "t:", lease: "2s" },
        cache: { tagTTL: 0, staleIfError: "1h30m", maxSize: 1024, memoryBytes: "0" },
        timeouts: { connect: "1s", headers: "2s", body: "3s", fill: "4m" },
        log: { level: "silent" },
        upstreams: {
          "localhost:5001": { url: "http://127.0.0.1:5001/", clientAuth: true, authRealms: ["https://auth.example.com/token", "Auth.Example.org"] },
          "[::1]:5002": { url: "HTTPS://Registry.Example.com:443" },
        },
      },
      {},
    );
    // auth.users cannot be combined with clientAuth (one Authorization header): read on its own.
    const withUsers = parseConfig({ upstreams: { "[::1]:5002": { url: "https://registry.example.com" } }, auth: { users: { alice: `$2y$10$${"a".repeat(53)}` } } }, {});
    expect(c.listen).toEqual({ host: "127.0.0.1", port: 0 });
    expect(c.dataDir).toBe("/var/cache/tug");
    expect(c.redis).toEqual({ url: "rediss://user:pw@redis:6380/2", prefix: "t:", lease: 2_000 });
    expect(c.cache).toEqual({ tagTTL: 0, staleIfError: 5_400_000, maxSize: 1024, memoryBytes: 0 });
    expect(c.timeouts).toEqual({ connect: 1_000, headers: 2_000, body: 3_000, fill: 240_000 });
    expect(c.log.level).toBe("silent");
    const local = c.upstreams["localhost:5001"];
    expect(local?.url).toBe("http://127.0.0.1:5001");
    expect(local?.clientAuth).toBe(true);
    expect(local?.authRealms).toEqual(["https://auth.example.com/token", "auth.example.org"]);
    expect(c.upstreams["[::1]:5002"]?.url).toBe("https://registry.example.com");
    expect(withUsers.auth.users.alice).toMatch(/^\$2y\$10\$/);
  });

  it("maps hosts without a prototype (no accidental upstreams['constructor'])", () => {
    const c = parseConfig(minimal(), {});
    expect(c.upstreams["constructor"]).toBeUndefined();
    expect(c.auth.users["toString"]).toBeUndefined();
  });
});

describe("listen", () => {
  it.each([
    ["0.0.0.0:5000", "0.0.0.0", 5000],
    ["[::]:5000", "::", 5000],
    [":5000", "0.0.0.0", 5000],
    ["127.0.0.1:0", "127.0.0.1", 0],
    ["localhost:8080", "localhost", 8080],
    ["[::1]:65535", "::1", 65535],
  ])("%s", (text, host, port) => {
    expect(parseListen(text)).toEqual({ host, port });
  });

  it.each(["5000", "0.0.0.0", "0.0.0.0:", "0.0.0.0:65536", "0.0.0.0:http", "::1:5000", "[nope]:5000", "http://0.0.0.0:5000", "a b:1"])(
    "rejects %j",
    (text) => {
      expect(() => parseListen(text)).toThrow(/is not a listen address/);
    },
  );
});

describe("registry hosts", () => {
  it.each(["docker.io", "ghcr.io", "registry.k8s.io", "localhost:5001", "10.0.0.1:5000", "[::1]:5000", "my-registry"])("accepts %s", (h) => {
    expect(isRegistryHost(h)).toBe(true);
  });
  it.each(["Docker.io", "https://ghcr.io", "ghcr.io/owner", "ghcr.io:0", "ghcr.io:99999", "-bad.io", "a_b.io", "", "ghcr.io:", "__proto__"])(
    "rejects %j",
    (h) => {
      expect(isRegistryHost(h)).toBe(false);
    },
  );
});

describe("every error names its key", () => {
  it("unknown key at top level", () => {
    expectKey(fail({ ...minimal(), foo: 1 }), "foo", "foo: unknown key");
  });

  it("unknown nested keys", () => {
    expectKey(fail({ ...minimal(), cache: { foo: 1 } }), "cache.foo", "cache.foo: unknown key");
    expectKey(
      fail({ upstreams: { "docker.io": { ...HUB, password: "hunter2" } } }),
      "upstreams.docker.io.password",
      "upstreams.docker.io.password: unknown key",
    );
  });

  it("suggests the right spelling of a mis-cased key", () => {
    expectKey(fail({ ...minimal(), cache: { tagttl: "1m" } }), "cache.tagttl", 'cache.tagttl: unknown key (did you mean "tagTTL"?)');
  });

  it("bad duration", () => {
    expectKey(
      fail({ ...minimal(), cache: { tagTTL: "5 minutes" } }),
      "cache.tagTTL",
      'cache.tagTTL: "5 minutes" is not a duration (use e.g. 30s, 5m, 7d)',
    );
    expectKey(fail({ ...minimal(), cache: { staleIfError: 300 } }), "cache.staleIfError", /unit is required/);
    expectKey(fail({ ...minimal(), timeouts: { connect: "0s" } }), "timeouts.connect", /must be greater than 0/);
    expectKey(fail({ ...minimal(), timeouts: { fill: "30d" } }), "timeouts.fill", /must be at most/);
  });

  it("bad size", () => {
    expectKey(fail({ ...minimal(), cache: { maxSize: "lots" } }), "cache.maxSize", /^cache\.maxSize: "lots" is not a size/);
    expectKey(fail({ ...minimal(), cache: { memoryBytes: "64M" } }), "cache.memoryBytes", /unknown unit "M"/);
    expectKey(fail({ ...minimal(), cache: { maxSize: "0" } }), "cache.maxSize", /must be greater than 0/);
  });

  it("bad listen", () => {
    expectKey(fail({ ...minimal(), listen: "5000" }), "listen", /^listen: "5000" is not a listen address/);
    expectKey(fail({ ...minimal(), listen: 5000 }), "listen", /is not a listen address/);
  });

  it("bad upstream url", () => {
    const bad = (url: unknown) => fail({ upstreams: { "docker.io": { url } } });
    expectKey(bad("ftp://x.io"), "upstreams.docker.io.url", /must be an http:\/\/ or https:\/\/ URL/);
    expectKey(bad("https://x.io/v2/"), "upstreams.docker.io.url", /must not have a path/);
    expectKey(bad("https://x.io?a=1"), "upstreams.docker.io.url", /query/);
    expectKey(bad("https://u:p@x.io"), "upstreams.docker.io.url", /credentials/);
    expectKey(bad("registry-1.docker.io"), "upstreams.docker.io.url", /is not a URL/);
    expectKey(bad(42), "upstreams.docker.io.url", "upstreams.docker.io.url: expected a string, got 42");
    expectKey(fail({ upstreams: { "docker.io": {} } }), "upstreams.docker.io.url", /is required/);
    expectKey(fail({ upstreams: { "docker.io": null } }), "upstreams.docker.io.url", /is required/);
  });

  it("bad redis url", () => {
    expectKey(fail({ ...minimal(), redis: { url: "http://redis:6379" } }), "redis.url", /redis:\/\/ or rediss:\/\//);
  });

  it("a redis lease too short to renew", () => {
    expectKey(fail({ ...minimal(), redis: { lease: "100ms" } }), "redis.lease", /at least 300ms/);
  });

  it("bad upstream key", () => {
    expectKey(fail({ upstreams: { "https://ghcr.io": { url: "https://ghcr.io" } } }), "upstreams.https://ghcr.io", /not a registry host/);
    expectKey(fail({ upstreams: { "GHCR.io": { url: "https://ghcr.io" } } }), "upstreams.GHCR.io", /not a registry host/);
  });

  it("no upstreams", () => {
    expectKey(fail({}), "upstreams", /is required/);
    expectKey(fail({ upstreams: {} }), "upstreams", "upstreams: at least one upstream is required");
    expectKey(fail({ upstreams: ["docker.io"] }), "upstreams", "upstreams: expected a mapping, got a list");
  });

  it("two defaults", () => {
    const err = fail({ upstreams: { "docker.io": HUB, "ghcr.io": { url: "https://ghcr.io", default: true } } });
    expectKey(err, "upstreams.ghcr.io.default", /only one upstream can be the default \(docker\.io, ghcr\.io/);
  });

  it("username without passwordEnv, and the reverse", () => {
    expectKey(
      fail({ upstreams: { "docker.io": { ...HUB, username: "bot" } } }),
      "upstreams.docker.io.username",
      /requires passwordEnv/,
    );
    expectKey(
      fail({ upstreams: { "docker.io": { ...HUB, passwordEnv: "TOKEN" } } }, { TOKEN: "x" }),
      "upstreams.docker.io.passwordEnv",
      "upstreams.docker.io.passwordEnv: requires username",
    );
  });

  it("passwordEnv naming an unset or empty variable", () => {
    const raw = { upstreams: { "docker.io": { ...HUB, username: "bot", passwordEnv: "HUB_TOKEN" } } };
    expectKey(fail(raw, {}), "upstreams.docker.io.passwordEnv", "upstreams.docker.io.passwordEnv: environment variable HUB_TOKEN is not set");
    expectKey(fail(raw, { HUB_TOKEN: "" }), "upstreams.docker.io.passwordEnv", /HUB_TOKEN is empty/);
  });

  it("a password pasted into passwordEnv", () => {
    const raw = { upstreams: { "docker.io": { ...HUB, username: "bot", passwordEnv: "hunter2!" } } };
    expectKey(fail(raw), "upstreams.docker.io.passwordEnv", /must be an environment variable name/);
  });

  it("bad types, enum values, realms and users", () => {
    expectKey(fail({ ...minimal(), cache: "big" }), "cache", 'cache: expected a mapping, got "big"');
    expectKey(fail({ ...minimal(), log: { level: "verbose" } }), "log.level", /"verbose" is not one of fatal, error, warn, info, debug, trace, silent/);
    expectKey(fail({ upstreams: { "docker.io": { ...HUB, clientAuth: "yes" } } }), "upstreams.docker.io.clientAuth", /expected true or false/);
    expectKey(
      fail({ upstreams: { "docker.io": { ...HUB, authRealms: ["ok.io", "not a host"] } } }),
      "upstreams.docker.io.authRealms[1]",
      /is not a URL or host name/,
    );
    expectKey(fail({ ...minimal(), auth: { users: { bob: "plaintext" } } }), "auth.users.bob", /not a bcrypt hash/);
    expectKey(fail({ ...minimal(), dataDir: "" }), "dataDir", "dataDir: must not be empty");
  });

  it("the top level must be a mapping", () => {
    expectKey(fail("listen: 1"), "config", /top level must be a mapping/);
    expectKey(fail([1, 2]), "config", /top level must be a mapping/);
  });

  it("reports every problem, one per line, first one as the key", () => {
    const err = fail({ foo: 1, cache: { tagTTL: "x", maxSize: "y" }, upstreams: { "docker.io": HUB } });
    const lines = err.message.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => l.split(":")[0]).sort()).toEqual(["cache.maxSize", "cache.tagTTL", "foo"]);
    expect(lines[0]?.startsWith(`${err.key}: `)).toBe(true);
  });
});

describe("the password", () => {
  const raw = { upstreams: { "docker.io": { ...HUB, username: "ci-bot", passwordEnv: "HUB_TOKEN" } } };
  const secret = "s3cr3t-t0ken-value";

  it("is resolved from the environment", () => {
    const up = parseConfig(raw, { HUB_TOKEN: secret }).upstreams["docker.io"];
    expect(up?.username).toBe("ci-bot");
    expect(up?.passwordEnv).toBe("HUB_TOKEN");
    expect(up?.password).toBe(secret);
  });

  it("never shows in JSON, inspect or spreads", () => {
    const c = parseConfig(raw, { HUB_TOKEN: secret });
    expect(JSON.stringify(c)).not.toContain(secret);
    expect(JSON.stringify(c.upstreams["docker.io"])).not.toContain(secret);
    expect(inspect(c, { depth: 10 })).not.toContain(secret);
    expect(Object.keys(c.upstreams["docker.io"] ?? {})).not.toContain("password");
    expect(JSON.stringify(c)).toContain("HUB_TOKEN");
  });
});

describe("immutability", () => {
  it("deep-freezes the result", () => {
    const c = parseConfig(
      { upstreams: { "docker.io": { ...HUB, username: "u", passwordEnv: "P", authRealms: ["auth.io"] } }, auth: { users: {} } },
      { P: "p" },
    );
    const up = c.upstreams["docker.io"];
    for (const o of [c, c.listen, c.redis, c.cache, c.timeouts, c.log, c.upstreams, up, up?.authRealms, c.auth, c.auth.users]) {
      expect(Object.isFrozen(o)).toBe(true);
    }
    expect(() => {
      (c.cache as { tagTTL: number }).tagTTL = 1;
    }).toThrow(TypeError);
    expect(() => {
      (up as { password?: string }).password = "other";
    }).toThrow(TypeError);
  });

  it("does not modify its input", () => {
    const raw = minimal();
    const before = JSON.stringify(raw);
    parseConfig(raw, { TUG_LOG_LEVEL: "debug" });
    expect(JSON.stringify(raw)).toBe(before);
    expect(Object.isFrozen(raw)).toBe(false);
  });
});
