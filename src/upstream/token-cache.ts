// Bearer tokens per (upstream, scope, identity), kept until shortly before they
// expire and fetched once however many requests need them at the same time.
import { SingleFlight } from "../coordination/single-flight.js";

export interface CachedToken {
  readonly token: string;
  /** Epoch ms after which the token is no longer used. */
  readonly expiresAt: number;
}

export interface TokenResponse {
  token: string;
  /** Seconds; the spec's default is 60 when absent. */
  expiresIn: number;
  /** Epoch ms at which the token was issued (the realm's issued_at, else now). */
  issuedAt: number;
}

/** Tokens are dropped this long before their expiry, or at a tenth of a short lifetime. */
const MARGIN_MS = 30_000;

export function tokenExpiry(t: TokenResponse): number {
  const lifetime = t.expiresIn * 1000;
  return t.issuedAt + lifetime - Math.min(MARGIN_MS, lifetime / 10);
}

export class TokenCache {
  readonly #tokens = new Map<string, CachedToken>();
  readonly #flight = new SingleFlight<CachedToken>();
  readonly #now: () => number;
  readonly #maxEntries: number;

  constructor(opts: { now?: () => number; maxEntries?: number } = {}) {
    this.#now = opts.now ?? Date.now;
    this.#maxEntries = opts.maxEntries ?? 10_000;
  }

  get(key: string): string | undefined {
    const t = this.#tokens.get(key);
    if (!t) return undefined;
    if (t.expiresAt <= this.#now()) {
      this.#tokens.delete(key);
      return undefined;
    }
    return t.token;
  }

  /** Returns a cached token or runs fetch once for all concurrent callers. */
  async obtain(key: string, fetch: () => Promise<TokenResponse>): Promise<string> {
    const cached = this.get(key);
    if (cached !== undefined) return cached;
    const t = await this.#flight.run(key, async () => {
      const res = await fetch();
      const entry = { token: res.token, expiresAt: tokenExpiry(res) };
      if (this.#tokens.size >= this.#maxEntries) {
        const oldest = this.#tokens.keys().next().value;
        if (oldest !== undefined) this.#tokens.delete(oldest);
      }
      this.#tokens.set(key, entry);
      return entry;
    });
    return t.token;
  }

  invalidate(key: string): void {
    this.#tokens.delete(key);
  }
}
