// Tag records shared by the replicas through Redis, so a tag revalidated by
// one replica is fresh on all (each replica's DiskTagStore keeps an in-memory
// LRU that would otherwise go on serving the older fetchedAt). Disk stays the
// durable copy and the fallback: while Redis is away, records are read and
// written on disk only, and a write there never fails a pull.
import type { Redis } from "ioredis";
import type { RedisHealth } from "../coordination/redis-health.js";
import type { TagKey } from "./layout.js";
import { parseTagRecord, type TagRecord, type TagStore } from "./tag-store.js";

// KEYS: record. ARGV: json, fetchedAt, ttl ms. Keeps the newest confirmation:
// two replicas revalidating one after the other must not move fetchedAt back.
const PUT_IF_NEWER = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, r = pcall(cjson.decode, cur)
  if ok and type(r) == 'table' and tonumber(r['fetchedAt']) and tonumber(r['fetchedAt']) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
`;

export interface RedisTagStoreOptions {
  readonly disk: TagStore;
  readonly client: Redis;
  readonly health: RedisHealth;
  readonly prefix: string;
  /** How long Redis keeps a record: past tagTTL + staleIfError it could not be served anyway. */
  readonly ttlMs: number;
}

export class RedisTagStore implements TagStore {
  readonly #o: RedisTagStoreOptions;

  constructor(opts: RedisTagStoreOptions) {
    this.#o = opts;
    if (!("tugTagPut" in opts.client)) opts.client.defineCommand("tugTagPut", { numberOfKeys: 1, lua: PUT_IF_NEWER });
  }

  #key(k: TagKey): string {
    return `${this.#o.prefix}tag:${k.upstream}/${k.repository}:${k.tag}`;
  }

  async get(key: TagKey): Promise<TagRecord | undefined> {
    const local = await this.#o.disk.get(key);
    const { health, client } = this.#o;
    if (!health.up) return local;
    try {
      const raw = await client.get(this.#key(key));
      const shared = raw === null ? undefined : parseTagRecord(raw);
      if (!shared) return local;
      return local && local.fetchedAt > shared.fetchedAt ? local : shared;
    } catch (err) {
      health.fail(err);
      return local;
    }
  }

  async put(key: TagKey, rec: TagRecord): Promise<void> {
    await this.#o.disk.put(key, rec);
    const { health, client } = this.#o;
    if (!health.up) return;
    try {
      await (client as unknown as { tugTagPut(k: string, json: string, at: number, ttl: number): Promise<number> }).tugTagPut(
        this.#key(key),
        JSON.stringify(rec),
        rec.fetchedAt,
        Math.max(1, Math.round(this.#o.ttlMs)),
      );
    } catch (err) {
      health.fail(err);
    }
  }
}
