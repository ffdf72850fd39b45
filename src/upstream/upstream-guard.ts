// What stands between tug and one upstream: the negative cache (recent failures
// per resource are answered again without asking), the circuit breaker (a dead
// upstream fails fast for a cool-off) and the concurrency limit (at most N
// requests in flight; a blob download holds its slot until its body ends).
// RegistryClient runs every upstream request through run().
import { Readable } from "node:stream";
import type { Logger } from "pino";
import { RegistryError } from "../oci/errors.js";
import type { Metrics } from "../observability/metrics.js";
import { CircuitBreaker } from "./circuit-breaker.js";
import { ConcurrencyLimit } from "./concurrency-limit.js";
import { NegativeCache } from "./negative-cache.js";
import { isUpstreamOutage, type UpstreamResponse } from "./registry-client.js";

type GuardedResponse = UpstreamResponse;

export interface UpstreamGuardOptions {
  readonly upstream: string;
  readonly negativeTTL: number;
  readonly breakerFailures: number;
  readonly breakerCoolOff: number;
  readonly concurrency: number;
  readonly now: () => number;
  readonly logger: Logger;
  readonly metrics?: Metrics;
}

type Remembered =
  | { readonly kind: "error"; readonly error: RegistryError }
  | { readonly kind: "status"; readonly status: number; readonly headers: Readonly<Record<string, string | string[] | undefined>>; readonly url: string };

function isFailureStatus(status: number): boolean {
  return status >= 500 || status === 429;
}

function retryAfterMs(h: string | string[] | undefined): number | undefined {
  const v = Array.isArray(h) ? h[0] : h;
  return v !== undefined && /^\d+$/.test(v) ? Number(v) * 1000 : undefined;
}

export class UpstreamGuard {
  readonly breaker: CircuitBreaker;
  readonly negative: NegativeCache<Remembered>;
  readonly limit: ConcurrencyLimit;
  readonly #o: UpstreamGuardOptions;

  constructor(opts: UpstreamGuardOptions) {
    this.#o = opts;
    const { metrics, upstream } = opts;
    this.breaker = new CircuitBreaker({
      upstream,
      failures: opts.breakerFailures,
      coolOffMs: opts.breakerCoolOff,
      now: opts.now,
      logger: opts.logger,
      onChange: (up) => metrics?.upstreamUp.set({ upstream }, up ? 1 : 0),
    });
    this.negative = new NegativeCache<Remembered>({ ttlMs: opts.negativeTTL, now: opts.now });
    this.limit = new ConcurrencyLimit(opts.concurrency);
  }

  /**
   * Runs one upstream request for `key` (its path): answered from the negative
   * cache, refused by an open breaker, or sent once a concurrency slot is free.
   * The slot is held until the response body closes.
   */
  async run(key: string, send: () => Promise<GuardedResponse>): Promise<GuardedResponse> {
    const { metrics, upstream } = this.#o;
    const remembered = this.negative.get(key);
    if (remembered) {
      metrics?.upstreamShortCircuits.inc({ upstream, reason: "negative_cache" });
      if (remembered.kind === "error") throw remembered.error;
      return { status: remembered.status, headers: remembered.headers, body: Readable.from([]), url: remembered.url };
    }
    let trial: boolean;
    try {
      trial = this.breaker.admit();
    } catch (err) {
      metrics?.upstreamShortCircuits.inc({ upstream, reason: "breaker_open" });
      throw err;
    }
    const slot = this.limit.acquire();
    metrics?.upstreamQueued.set({ upstream }, this.limit.queued);
    const release = await slot;
    metrics?.upstreamQueued.set({ upstream }, this.limit.queued);
    let res: GuardedResponse;
    try {
      res = await send();
    } catch (err) {
      release();
      // Only "not answering usefully" counts (unreachable, timeout, 5xx, 429); a 404 or a refused token does not.
      if (isUpstreamOutage(err)) {
        this.breaker.failure(err);
        this.negative.set(key, { kind: "error", error: err as RegistryError });
      } else if (trial) {
        this.breaker.abandonTrial();
      }
      throw err;
    }
    if (isFailureStatus(res.status)) {
      this.breaker.failure(new RegistryError(res.status === 429 ? "TOOMANYREQUESTS" : "UNAVAILABLE", `upstream ${upstream} answered ${res.status}`));
      const ra = res.status === 429 ? retryAfterMs(res.headers["retry-after"]) : undefined;
      this.negative.set(key, { kind: "status", status: res.status, headers: pickReplayHeaders(res.headers), url: res.url }, ra);
    } else {
      this.breaker.success();
    }
    const body = res.body;
    if (body.destroyed || body.readableEnded) release();
    else body.once("close", release);
    return res;
  }

  /** A body that failed after good headers (cut, timed out, wrong bytes) still counts against the upstream. */
  bodyFailed(err: unknown): void {
    this.breaker.failure(err);
  }
}

function pickReplayHeaders(h: GuardedResponse["headers"]): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const name of ["retry-after", "content-type", "www-authenticate"]) if (h[name] !== undefined) out[name] = h[name];
  return out;
}
