// Whether Redis coordination works right now: one small state machine
// (connecting → up ⇄ degraded) fed by the connection's events and by command
// failures, logged once per transition (never per request), mirrored in the
// tug_redis_up gauge, and reported by status() for /readyz. While degraded it
// probes with PING, so a Redis that was slow (commands timing out on an open
// connection) is noticed coming back, as is one that restarted.
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";

export type RedisState = "connecting" | "up" | "degraded";

export interface CoordinationStatus {
  /** A word for /readyz: up, degraded, connecting, or disabled (no redis.url). */
  readonly state: RedisState | "disabled";
  /** What coordinates upstream fetches now: "redis" (the fleet) or "memory" (this process only). */
  readonly coordination: "redis" | "memory";
  readonly since: string;
  readonly reason?: string;
  readonly detail: string;
}

export interface RedisHealthOptions {
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Pause between PINGs while degraded on an open connection. */
  readonly probeMs?: number;
  readonly now?: () => number;
}

export class RedisHealth {
  readonly #client: Redis;
  readonly #o: RedisHealthOptions;
  #state: RedisState = "connecting";
  #since: number;
  #reason: string | undefined;
  #probe: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #upWaiters = new Set<() => void>();

  constructor(client: Redis, opts: RedisHealthOptions) {
    this.#client = client;
    this.#o = opts;
    this.#since = this.#now();
    opts.metrics?.redisUp.set(0);
    client.on("ready", () => void this.#confirm());
    client.on("error", (err: Error) => this.fail(err));
    client.on("close", () => this.fail(new Error("connection closed")));
    if (client.status === "ready") void this.#confirm();
  }

  get state(): RedisState {
    return this.#state;
  }

  get up(): boolean {
    return this.#state === "up";
  }

  /** A command failed (refused, timed out, connection lost): coordinate in-process until Redis answers again. */
  fail(err: unknown): void {
    if (this.#closed) return;
    const reason = err instanceof Error ? err.message : String(err);
    if (this.#state !== "degraded") {
      this.#transition("degraded", reason);
      this.#o.logger.warn({ reason }, "redis unreachable: coordinating upstream fetches in-process only until it answers again");
    }
    this.#scheduleProbe();
  }

  /** Resolves true once up, false after timeoutMs (start-up gives Redis a moment before serving). */
  waitUp(timeoutMs: number): Promise<boolean> {
    if (this.up) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#upWaiters.delete(done);
        resolve(this.up);
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.#upWaiters.add(done);
    });
  }

  status(): CoordinationStatus {
    const base = { since: new Date(this.#since).toISOString(), ...(this.#reason !== undefined && this.#state !== "up" ? { reason: this.#reason } : {}) };
    if (this.#state === "up") return { state: "up", coordination: "redis", detail: "one upstream fetch per blob across replicas", ...base };
    return {
      state: this.#state,
      coordination: "memory",
      detail: "serving from disk and fetching misses with in-process coordination only; reconnecting by itself",
      ...base,
    };
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#probe);
    for (const w of [...this.#upWaiters]) w();
  }

  async #confirm(): Promise<void> {
    try {
      await this.#client.ping();
    } catch (err) {
      this.fail(err);
      return;
    }
    if (this.#closed || this.#state === "up") return;
    const was = this.#state;
    this.#transition("up", undefined);
    clearTimeout(this.#probe);
    this.#probe = undefined;
    if (was === "connecting") this.#o.logger.info("redis connected: coordinating upstream fetches across replicas");
    else this.#o.logger.info("redis answers again: coordinating upstream fetches across replicas");
    for (const w of [...this.#upWaiters]) w();
  }

  #scheduleProbe(): void {
    if (this.#probe !== undefined || this.#closed) return;
    this.#probe = setTimeout(() => {
      this.#probe = undefined;
      // A closed connection announces its return with "ready"; an open but slow one must be asked.
      if (this.#state === "degraded" && this.#client.status === "ready") void this.#confirm();
      if (this.#state === "degraded") this.#scheduleProbe();
    }, this.#o.probeMs ?? 1000);
    this.#probe.unref();
  }

  #transition(state: RedisState, reason: string | undefined): void {
    this.#state = state;
    this.#since = this.#now();
    this.#reason = reason;
    this.#o.metrics?.redisUp.set(state === "up" ? 1 : 0);
  }

  #now(): number {
    return (this.#o.now ?? Date.now)();
  }
}
