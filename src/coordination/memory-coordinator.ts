// Leases within one process: the in-process single-flight expressed as a
// Coordinator. A tug without redis.url uses it alone; with Redis it stands in
// while Redis is unreachable. Leases expire like Redis ones (a holder that
// never releases does not block its key forever).
import { EventEmitter } from "node:events";
import { DEFAULT_LEASE_MS, type AcquireOptions, type Attempt, type Coordinator, type LeaseHolder } from "./coordinator.js";
import { INSTANCE_ID } from "./instance-id.js";
import { RenewingLease, makeToken, parseToken, type LeaseOps } from "./renewing-lease.js";

interface Entry {
  readonly token: string;
  expiresAt: number;
  timer: NodeJS.Timeout;
  data: string | undefined;
}

export interface MemoryCoordinatorOptions {
  readonly owner?: string;
  readonly leaseMs?: number;
}

export class MemoryCoordinator implements Coordinator {
  readonly kind = "memory";
  readonly shared = false;
  readonly owner: string;
  readonly #leaseMs: number;
  readonly #entries = new Map<string, Entry>();
  readonly #freed = new EventEmitter();
  readonly #topics = new EventEmitter();
  // Fences start at the clock (ms) so they keep growing across restarts, like Redis's.
  #fence = Date.now();

  constructor(opts: MemoryCoordinatorOptions = {}) {
    this.owner = opts.owner ?? INSTANCE_ID;
    this.#leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    this.#freed.setMaxListeners(0);
    this.#topics.setMaxListeners(0);
  }

  async tryAcquire(key: string, opts: AcquireOptions = {}): Promise<Attempt> {
    const current = this.#entries.get(key);
    if (current) return { holder: this.#holderOf(key, current) };
    const leaseMs = opts.leaseMs ?? this.#leaseMs;
    const token = makeToken(++this.#fence, this.owner);
    this.#entries.set(key, { token, expiresAt: Date.now() + leaseMs, timer: this.#expiry(key, token, leaseMs), data: undefined });
    return { lease: new RenewingLease(key, token, leaseMs, opts.renew ?? true, this.#ops(key), () => undefined) };
  }

  async holder(key: string): Promise<LeaseHolder | undefined> {
    const e = this.#entries.get(key);
    return e ? this.#holderOf(key, e) : undefined;
  }

  async waitFree(key: string, timeoutMs: number): Promise<boolean> {
    if (!this.#entries.has(key)) return true;
    return new Promise<boolean>((resolve) => {
      const done = (free: boolean): void => {
        clearTimeout(timer);
        this.#freed.off(key, onFree);
        resolve(free);
      };
      const onFree = (): void => done(true);
      const timer = setTimeout(() => done(!this.#entries.has(key)), timeoutMs);
      this.#freed.on(key, onFree);
    });
  }

  async publish(topic: string, message: string): Promise<void> {
    this.#topics.emit(topic, message);
  }

  async subscribe(topic: string, listener: (message: string) => void): Promise<() => void> {
    this.#topics.on(topic, listener);
    return () => void this.#topics.off(topic, listener);
  }

  async close(): Promise<void> {
    for (const e of this.#entries.values()) clearTimeout(e.timer);
    this.#entries.clear();
    this.#topics.removeAllListeners();
  }

  #holderOf(key: string, e: Entry): LeaseHolder {
    const t = parseToken(e.token)!;
    return { key, fence: t.fence, owner: t.owner, ttlMs: Math.max(0, e.expiresAt - Date.now()), data: e.data };
  }

  #expiry(key: string, token: string, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.#drop(key, token), ms);
    timer.unref();
    return timer;
  }

  /** Compare-and-delete, the in-memory twin of the Redis script. */
  #drop(key: string, token: string): boolean {
    const e = this.#entries.get(key);
    if (!e || e.token !== token) return false;
    clearTimeout(e.timer);
    this.#entries.delete(key);
    this.#freed.emit(key);
    return true;
  }

  #ops(key: string): LeaseOps {
    return {
      renew: async (token, leaseMs, data) => {
        const e = this.#entries.get(key);
        if (e === undefined) {
          // Expired and nobody took it: take it again, as the Redis renewal does.
          this.#entries.set(key, { token, expiresAt: Date.now() + leaseMs, timer: this.#expiry(key, token, leaseMs), data });
          return true;
        }
        if (e.token !== token) return false;
        clearTimeout(e.timer);
        e.expiresAt = Date.now() + leaseMs;
        e.timer = this.#expiry(key, token, leaseMs);
        return true;
      },
      setData: async (token, data) => {
        const e = this.#entries.get(key);
        if (!e || e.token !== token) return false;
        e.data = data;
        return true;
      },
      check: async (token) => this.#entries.get(key)?.token === token,
      release: async (token) => this.#drop(key, token),
    };
  }
}
