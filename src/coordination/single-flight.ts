// In-process single-flight: concurrent callers with the same key share one
// execution of the work (PROTOCOL.md lesson 1: N misses fetched N times).

export class SingleFlight<V> {
  readonly #inflight = new Map<string, Promise<V>>();

  /** Runs fn unless a call with this key is already under way; then joins it. */
  run(key: string, fn: () => Promise<V>): Promise<V> {
    const existing = this.#inflight.get(key);
    if (existing) return existing;
    const p = (async () => {
      try {
        return await fn();
      } finally {
        this.#inflight.delete(key);
      }
    })();
    this.#inflight.set(key, p);
    return p;
  }

  has(key: string): boolean {
    return this.#inflight.has(key);
  }

  get size(): number {
    return this.#inflight.size;
  }
}
