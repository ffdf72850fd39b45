// Leases shared by every replica through Redis: `SET key token NX PX lease`
// (inside a script that also hands out the fence), renewed while the job runs,
// released by compare-and-delete so a slow holder never deletes the lock of
// whoever took over after its lease lapsed (the Redlock page's single-instance
// algorithm, plus a fencing token). Pub/sub carries release notices and fill
// progress. Every command fails fast when Redis is away (no offline queue, a
// command timeout); FailoverCoordinator turns those failures into in-process
// coordination.
import { EventEmitter } from "node:events";
import { randomBytes } from "node:crypto";
import { Redis, type RedisOptions } from "ioredis";
import { DEFAULT_LEASE_MS, type AcquireOptions, type Attempt, type Coordinator, type LeaseHolder } from "./coordinator.js";
import { INSTANCE_ID } from "./instance-id.js";
import { RenewingLease, parseToken, type LeaseOps } from "./renewing-lease.js";

// KEYS: lease, lease data, fence counter. ARGV: owner, lease ms, random, fence floor (clock ms).
// The fence floor keeps fences growing when Redis restarts without its data.
// string.format: Lua 5.1 prints large numbers in exponent form.
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  return {0, cur, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}
end
local f = redis.call('INCR', KEYS[3])
local floor = tonumber(ARGV[4])
if f < floor then
  f = floor
  redis.call('SET', KEYS[3], ARGV[4])
end
local token = string.format('%d', f) .. ':' .. ARGV[1] .. ':' .. ARGV[3]
redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return {1, token}
`;

// KEYS: lease, lease data. ARGV: token, lease ms, data ('' = none).
// 1: extended. 2: the lease had vanished (a Redis restart without persistence)
// and nobody else held it, so it is ours again. 0: someone else holds it.
const RENEW = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  if redis.call('PEXPIRE', KEYS[2], ARGV[2]) == 0 and ARGV[3] ~= '' then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  end
  return 1
end
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2]) end
  return 2
end
return 0
`;

// KEYS: lease, lease data. ARGV: token, data. Fenced: only the current holder writes.
const SET_DATA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
return 1
`;

// KEYS: lease, lease data. ARGV: token, release channel, key. Compare-and-delete.
const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`;

// KEYS: lease, lease data.
const HOLDER = `
local cur = redis.call('GET', KEYS[1])
if not cur then return false end
return {cur, redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}
`;

interface Scripts {
  tugAcquire(lease: string, data: string, fence: string, owner: string, ms: number, rand: string, floor: number): Promise<[number, string, number?, (string | null)?]>;
  tugRenew(lease: string, data: string, token: string, ms: number, payload: string): Promise<number>;
  tugSetData(lease: string, data: string, token: string, payload: string): Promise<number>;
  tugRelease(lease: string, data: string, token: string, channel: string, key: string): Promise<number>;
  tugHolder(lease: string, data: string): Promise<[string, number, string | null] | null>;
}

/** Client options for a coordinator: fail fast instead of queueing while Redis is away; reconnect forever. */
export function redisClientOptions(commandTimeoutMs = 1000): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    commandTimeout: commandTimeoutMs,
    connectTimeout: 2000,
    // Reconnect by itself, backing off to one attempt every 2 s.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    lazyConnect: false,
  };
}

export interface RedisCoordinatorOptions {
  readonly client: Redis;
  /** A second connection for pub/sub (a subscribed connection can run no other commands). */
  readonly subscriber: Redis;
  /** Prefix of every key and channel, e.g. "tug:". */
  readonly prefix: string;
  readonly owner?: string;
  readonly leaseMs?: number;
  /** Told about failures nobody awaits (renewals, subscriptions). */
  readonly onError?: (err: unknown) => void;
}

export class RedisCoordinator implements Coordinator {
  readonly kind = "redis";
  readonly shared = true;
  readonly owner: string;
  readonly client: Redis;
  readonly subscriber: Redis;
  readonly #prefix: string;
  readonly #leaseMs: number;
  readonly #onError: (err: unknown) => void;
  readonly #scripts: Scripts;
  /** channel → listeners; kept while Redis is away and resubscribed on every reconnect. */
  readonly #channels = new Map<string, Set<(message: string) => void>>();
  readonly #released = new EventEmitter();
  readonly #releasedChannel: string;

  constructor(opts: RedisCoordinatorOptions) {
    this.client = opts.client;
    this.subscriber = opts.subscriber;
    this.#prefix = opts.prefix;
    this.owner = opts.owner ?? INSTANCE_ID;
    this.#leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    this.#onError = opts.onError ?? (() => undefined);
    this.#released.setMaxListeners(0);
    this.#releasedChannel = `${this.#prefix}released`;
    const define = (name: string, numberOfKeys: number, lua: string): void => {
      if (!(name in this.client)) this.client.defineCommand(name, { numberOfKeys, lua });
    };
    define("tugAcquire", 3, ACQUIRE);
    define("tugRenew", 2, RENEW);
    define("tugSetData", 2, SET_DATA);
    define("tugRelease", 2, RELEASE);
    define("tugHolder", 2, HOLDER);
    this.#scripts = this.client as unknown as Scripts;
    this.subscriber.on("message", (channel: string, message: string) => {
      if (channel === this.#releasedChannel) this.#released.emit(message);
      for (const l of this.#channels.get(channel) ?? []) l(message);
    });
    this.#channels.set(this.#releasedChannel, new Set());
    // Subscriptions do not survive a reconnect (autoResubscribe is off so that
    // channels added while Redis was away are included): renew them all.
    this.subscriber.on("ready", () => {
      this.subscriber.subscribe(...this.#channels.keys()).catch(this.#onError);
    });
    if (this.subscriber.status === "ready") this.subscriber.subscribe(this.#releasedChannel).catch(this.#onError);
  }

  /** Creates both connections from a redis:// URL. */
  static connect(url: string, opts: Omit<RedisCoordinatorOptions, "client" | "subscriber"> & { commandTimeoutMs?: number }): RedisCoordinator {
    const options = redisClientOptions(opts.commandTimeoutMs);
    const client = new Redis(url, options);
    const subscriber = new Redis(url, options);
    // ioredis reports connection errors as events; health watches them, these keep them from being "unhandled".
    client.on("error", () => undefined);
    subscriber.on("error", () => undefined);
    return new RedisCoordinator({ ...opts, client, subscriber });
  }

  #leaseKey(key: string): string {
    return `${this.#prefix}lease:${key}`;
  }

  #dataKey(key: string): string {
    return `${this.#prefix}lease-data:${key}`;
  }

  async tryAcquire(key: string, opts: AcquireOptions = {}): Promise<Attempt> {
    const leaseMs = opts.leaseMs ?? this.#leaseMs;
    const r = await this.#scripts.tugAcquire(
      this.#leaseKey(key),
      this.#dataKey(key),
      `${this.#prefix}fence`,
      this.owner,
      leaseMs,
      randomBytes(8).toString("hex"),
      Date.now(),
    );
    if (r[0] === 1) {
      return { lease: new RenewingLease(key, r[1], leaseMs, opts.renew ?? true, this.#ops(key), this.#onError) };
    }
    return { holder: this.#holderOf(key, r[1], r[2] ?? -1, r[3] ?? null) };
  }

  async holder(key: string): Promise<LeaseHolder | undefined> {
    const r = await this.#scripts.tugHolder(this.#leaseKey(key), this.#dataKey(key));
    return r ? this.#holderOf(key, r[0], r[1], r[2]) : undefined;
  }

  async waitFree(key: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let wake: () => void = () => undefined;
    const onReleased = (): void => wake();
    this.#released.on(key, onReleased);
    try {
      for (;;) {
        const woken = new Promise<void>((resolve) => (wake = resolve));
        const h = await this.holder(key);
        if (!h) return true;
        const left = deadline - Date.now();
        if (left <= 0) return false;
        // A lease ends by release (a message) or by expiry (no message): wait for either.
        await raceTimeout(woken, Math.min(left, h.ttlMs + 5));
      }
    } finally {
      this.#released.off(key, onReleased);
    }
  }

  async publish(topic: string, message: string): Promise<void> {
    await this.client.publish(`${this.#prefix}topic:${topic}`, message);
  }

  async subscribe(topic: string, listener: (message: string) => void): Promise<() => void> {
    const channel = `${this.#prefix}topic:${topic}`;
    let set = this.#channels.get(channel);
    const fresh = set === undefined;
    if (!set) {
      set = new Set();
      this.#channels.set(channel, set);
    }
    set.add(listener);
    if (fresh && this.subscriber.status === "ready") {
      // Awaited so that a caller who checks state after subscribing misses no message.
      await this.subscriber.subscribe(channel).catch(this.#onError);
    }
    return () => {
      const s = this.#channels.get(channel);
      if (!s) return;
      s.delete(listener);
      if (s.size === 0) {
        this.#channels.delete(channel);
        if (this.subscriber.status === "ready") this.subscriber.unsubscribe(channel).catch(() => undefined);
      }
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.client, this.subscriber].map((c) => quit(c)));
  }

  #holderOf(key: string, token: string, pttl: number, data: string | null): LeaseHolder {
    const t = parseToken(token) ?? { fence: 0, owner: "unknown" };
    return { key, fence: t.fence, owner: t.owner, ttlMs: pttl >= 0 ? pttl : this.#leaseMs, data: data ?? undefined };
  }

  #ops(key: string): LeaseOps {
    const lease = this.#leaseKey(key);
    const data = this.#dataKey(key);
    return {
      renew: async (token, leaseMs, payload) => (await this.#scripts.tugRenew(lease, data, token, leaseMs, payload ?? "")) !== 0,
      setData: async (token, payload) => (await this.#scripts.tugSetData(lease, data, token, payload)) === 1,
      check: async (token) => (await this.client.get(lease)) === token,
      release: async (token) => (await this.#scripts.tugRelease(lease, data, token, this.#releasedChannel, key)) === 1,
    };
  }
}

function raceTimeout(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() => clearTimeout(timer));
}

/** QUIT, or drop the connection if Redis does not answer promptly. */
async function quit(c: Redis): Promise<void> {
  if (c.status === "end") return;
  if (c.status !== "ready") {
    c.disconnect();
    return;
  }
  await raceTimeout(
    c.quit().then(
      () => undefined,
      () => undefined,
    ),
    500,
  );
  c.disconnect();
}
