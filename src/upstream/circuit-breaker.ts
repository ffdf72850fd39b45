// A per-upstream circuit breaker: after `failures` consecutive failures the
// upstream is marked down for `coolOffMs`; while down, requests fail at once
// (so cached content is served without waiting on a dead upstream, and the
// upstream is not hammered). After the cool-off one trial request is let
// through: its success closes the breaker, its failure opens it again.
// Transitions down and up are logged once each (not per request).
import type { Logger } from "pino";
import { RegistryError } from "../oci/errors.js";

export type BreakerState = "closed" | "open" | "half-open";

export interface CircuitBreakerOptions {
  readonly upstream: string;
  /** Consecutive failures that open the breaker; 0 disables it. */
  readonly failures: number;
  readonly coolOffMs: number;
  readonly now: () => number;
  readonly logger: Logger;
  /** Called with true when the upstream is considered up, false when marked down. */
  readonly onChange?: (up: boolean) => void;
}

export class CircuitBreaker {
  readonly #o: CircuitBreakerOptions;
  #state: BreakerState = "closed";
  #consecutive = 0;
  #openUntil = 0;
  #trialInFlight = false;
  #lastError: RegistryError | undefined;

  constructor(opts: CircuitBreakerOptions) {
    this.#o = opts;
    opts.onChange?.(true);
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** ms until a trial request may go, 0 when requests may go now. */
  remainingMs(): number {
    return this.#state === "open" ? Math.max(0, this.#openUntil - this.#o.now()) : 0;
  }

  /**
   * Throws the fast-fail error when the upstream is marked down; otherwise
   * admits the request (as the one trial request when the cool-off is over).
   * Returns true when this request is the trial.
   */
  admit(): boolean {
    if (this.#o.failures === 0 || this.#state === "closed") return false;
    if (this.#state === "open" && this.#o.now() >= this.#openUntil) {
      this.#state = "half-open";
    }
    if (this.#state === "half-open" && !this.#trialInFlight) {
      this.#trialInFlight = true;
      return true;
    }
    throw this.#downError();
  }

  success(): void {
    this.#consecutive = 0;
    this.#trialInFlight = false;
    if (this.#state !== "closed") {
      this.#state = "closed";
      this.#o.logger.info({ upstream: this.#o.upstream }, "upstream is back up: circuit breaker closed");
      this.#o.onChange?.(true);
    }
  }

  failure(err: unknown): void {
    if (err instanceof RegistryError) this.#lastError = err;
    this.#consecutive++;
    this.#trialInFlight = false;
    if (this.#o.failures === 0) return;
    if (this.#state === "half-open") {
      // The trial failed: down again for another cool-off (no log: still down).
      this.#state = "open";
      this.#openUntil = this.#o.now() + this.#o.coolOffMs;
      return;
    }
    if (this.#state === "closed" && this.#consecutive >= this.#o.failures) {
      this.#state = "open";
      this.#openUntil = this.#o.now() + this.#o.coolOffMs;
      this.#o.logger.warn(
        { upstream: this.#o.upstream, failures: this.#consecutive, coolOffMs: this.#o.coolOffMs, reason: this.#lastError?.message },
        "upstream marked down: circuit breaker open",
      );
      this.#o.onChange?.(false);
    }
  }

  /** A trial that ended without a verdict (e.g. the caller gave up) frees the slot. */
  abandonTrial(): void {
    this.#trialInFlight = false;
  }

  #downError(): RegistryError {
    const seconds = String(Math.max(1, Math.ceil(this.remainingMs() / 1000)));
    const detail = { upstream: this.#o.upstream, breaker: "open", retryAfterSeconds: Number(seconds) };
    // An upstream that rate-limited us stays a rate limit to our clients (PROTOCOL.md lesson 12).
    if (this.#lastError?.code === "TOOMANYREQUESTS") {
      return new RegistryError("TOOMANYREQUESTS", `upstream ${this.#o.upstream} is rate limiting (marked down for now)`, { detail, headers: { "Retry-After": seconds } });
    }
    return new RegistryError("UNAVAILABLE", `upstream ${this.#o.upstream} is marked down after repeated failures`, {
      detail,
      headers: { "Retry-After": seconds },
    });
  }
}
