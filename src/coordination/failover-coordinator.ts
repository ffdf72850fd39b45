// The coordinator a replica with redis.url uses: Redis while it answers, this
// process's memory while it does not. A Redis outage therefore costs at most
// duplicate upstream fetches (each replica fetching for itself), never a
// failed pull: no call here throws because Redis is away.
import type { AcquireOptions, Attempt, Coordinator, LeaseHolder } from "./coordinator.js";
import type { MemoryCoordinator } from "./memory-coordinator.js";
import type { RedisCoordinator } from "./redis-coordinator.js";
import type { RedisHealth } from "./redis-health.js";

export class FailoverCoordinator implements Coordinator {
  readonly redis: RedisCoordinator;
  readonly memory: MemoryCoordinator;
  readonly health: RedisHealth;

  constructor(redis: RedisCoordinator, memory: MemoryCoordinator, health: RedisHealth) {
    this.redis = redis;
    this.memory = memory;
    this.health = health;
  }

  get kind(): string {
    return this.shared ? "redis" : "memory";
  }

  get shared(): boolean {
    return this.health.up;
  }

  get owner(): string {
    return this.redis.owner;
  }

  async #either<T>(viaRedis: () => Promise<T>, viaMemory: () => Promise<T>): Promise<T> {
    if (this.health.up) {
      try {
        return await viaRedis();
      } catch (err) {
        this.health.fail(err);
      }
    }
    return viaMemory();
  }

  tryAcquire(key: string, opts?: AcquireOptions): Promise<Attempt> {
    return this.#either(
      () => this.redis.tryAcquire(key, opts),
      () => this.memory.tryAcquire(key, opts),
    );
  }

  holder(key: string): Promise<LeaseHolder | undefined> {
    return this.#either(
      () => this.redis.holder(key),
      () => this.memory.holder(key),
    );
  }

  async waitFree(key: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    return this.#either(
      () => this.redis.waitFree(key, timeoutMs),
      // Redis went away while waiting: nothing fleet-wide can be waited on any more.
      () => this.memory.waitFree(key, Math.max(0, deadline - Date.now())),
    );
  }

  async publish(topic: string, message: string): Promise<void> {
    // Local subscribers listen on both, so they hear it either way.
    await this.#either(
      () => this.redis.publish(topic, message),
      () => this.memory.publish(topic, message),
    );
  }

  async subscribe(topic: string, listener: (message: string) => void): Promise<() => void> {
    const [a, b] = await Promise.all([this.memory.subscribe(topic, listener), this.redis.subscribe(topic, listener)]);
    return () => {
      a();
      b();
    };
  }

  async close(): Promise<void> {
    this.health.close();
    await Promise.all([this.redis.close(), this.memory.close()]);
  }
}
