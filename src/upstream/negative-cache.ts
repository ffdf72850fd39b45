// A short memory of upstream failures per resource (PROTOCOL.md lessons 12–13):
// while an entry lives, the same request is answered with the same failure
// without contacting the upstream, so a dead or rate-limiting upstream is not
// hammered by every client retry. Only failures are kept, never content.
import { LRUCache } from "lru-cache";

export class NegativeCache<V extends {}> {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #entries = new LRUCache<string, { value: V; until: number }>({ max: 10_000 });

  constructor(opts: { ttlMs: number; now: () => number }) {
    this.#ttlMs = opts.ttlMs;
    this.#now = opts.now;
  }

  get(key: string): V | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (this.#now() >= e.until) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  /** Remembers a failure for the TTL (or less, e.g. an upstream's shorter Retry-After). */
  set(key: string, value: V, ttlMs = this.#ttlMs): void {
    const ttl = Math.min(ttlMs, this.#ttlMs);
    if (ttl <= 0) return;
    this.#entries.set(key, { value, until: this.#now() + ttl });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }
}
