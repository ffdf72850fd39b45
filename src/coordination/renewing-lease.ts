// The part of a lease every backend shares: the token that names the holder,
// the renewal loop that keeps the lease alive while its job runs, and the
// `lost` signal. The backend supplies the four fenced operations.
import { randomBytes } from "node:crypto";
import type { Lease } from "./coordinator.js";

/** The backend's operations on one lease, each checking that the lease still carries `token`. */
export interface LeaseOps {
  /**
   * Extends the lease to leaseMs. true: extended (or re-taken because it had
   * vanished, e.g. after a Redis restart, and nobody else holds it). false: another
   * holder has it. Throws when the backend cannot be reached.
   */
  renew(token: string, leaseMs: number, data: string | undefined): Promise<boolean>;
  setData(token: string, data: string): Promise<boolean>;
  check(token: string): Promise<boolean>;
  release(token: string): Promise<boolean>;
}

/** "<fence>:<owner>:<random>": unique per grant, and says who holds it and how new the grant is. */
export function makeToken(fence: number, owner: string): string {
  return `${fence}:${owner}:${randomBytes(8).toString("hex")}`;
}

export function parseToken(token: string): { fence: number; owner: string } | undefined {
  const m = /^(\d+):([^:]+):[0-9a-f]+$/.exec(token);
  return m ? { fence: Number(m[1]), owner: m[2]! } : undefined;
}

export class RenewingLease implements Lease {
  readonly key: string;
  readonly token: string;
  readonly fence: number;
  readonly owner: string;
  readonly #ops: LeaseOps;
  readonly #leaseMs: number;
  readonly #onError: (err: unknown) => void;
  readonly #lost = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #ended = false;
  #data: string | undefined;
  renewals = 0;

  constructor(key: string, token: string, leaseMs: number, renew: boolean, ops: LeaseOps, onError: (err: unknown) => void) {
    const parsed = parseToken(token);
    if (!parsed) throw new Error(`malformed lease token ${JSON.stringify(token)}`);
    this.key = key;
    this.token = token;
    this.fence = parsed.fence;
    this.owner = parsed.owner;
    this.#ops = ops;
    this.#leaseMs = leaseMs;
    this.#onError = onError;
    if (renew) this.#schedule();
  }

  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  #schedule(): void {
    // A third of the lease: two renewals may fail (a slow or restarting backend) before it lapses.
    this.#timer = setTimeout(() => void this.renewNow(), Math.max(1, Math.floor(this.#leaseMs / 3)));
    this.#timer.unref();
  }

  /** One renewal now (also what the loop runs); reschedules itself unless the lease ended. */
  async renewNow(): Promise<void> {
    if (this.#ended) return;
    clearTimeout(this.#timer);
    try {
      if (await this.#ops.renew(this.token, this.#leaseMs, this.#data)) {
        this.renewals++;
      } else {
        this.#end(true);
        return;
      }
    } catch (err) {
      this.#onError(err);
    }
    if (!this.#ended) this.#schedule();
  }

  async setData(data: string): Promise<boolean> {
    if (this.#ended) return false;
    this.#data = data;
    const ok = await this.#ops.setData(this.token, data);
    if (!ok) this.#end(true);
    return ok;
  }

  async stillHeld(): Promise<boolean> {
    if (this.#ended) return false;
    const ok = await this.#ops.check(this.token);
    if (!ok) this.#end(true);
    return ok;
  }

  async release(): Promise<boolean> {
    const wasEnded = this.#ended;
    this.#end(false);
    if (wasEnded && this.#lost.signal.aborted) return false;
    return this.#ops.release(this.token);
  }

  #end(lost: boolean): void {
    this.#ended = true;
    clearTimeout(this.#timer);
    if (lost && !this.#lost.signal.aborted) this.#lost.abort(new Error(`lease ${this.key} was taken over`));
  }
}
