// The one test suite every Coordinator passes (memory, Redis, Redis with
// failover): lease grant and holder info, compare-and-delete, expiry,
// renewal, fencing against a stale holder, release notices, pub/sub. Two
// "replicas" are two coordinators on one backend (for memory: one process,
// so the same coordinator twice).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Coordinator, Lease } from "../../src/coordination/coordinator.js";
import { waitUntil } from "../helpers/process.js";

export interface SuiteSetup {
  readonly a: Coordinator;
  readonly b: Coordinator;
  close(): Promise<void>;
}

let counter = 0;
const freshKey = (what: string): string => `suite:${what}:${process.pid}:${++counter}`;

export function describeCoordinator(name: string, setup: () => Promise<SuiteSetup>): void {
  describe(`Coordinator contract: ${name}`, () => {
    let a: Coordinator;
    let b: Coordinator;
    let s: SuiteSetup;

    beforeAll(async () => {
      s = await setup();
      ({ a, b } = s);
    });
    afterAll(async () => {
      await s?.close();
    });

    it("grants a free key to one holder and tells the others who holds it", async () => {
      const key = freshKey("grant");
      const first = await a.tryAcquire(key, { leaseMs: 5_000 });
      const lease = first.lease!;
      expect(lease).toBeDefined();
      expect(lease.owner).toBe(a.owner);
      const second = await b.tryAcquire(key, { leaseMs: 5_000 });
      expect(second.lease).toBeUndefined();
      expect(second.holder).toMatchObject({ key, fence: lease.fence, owner: a.owner });
      expect(second.holder!.ttlMs).toBeGreaterThan(0);
      expect(second.holder!.ttlMs).toBeLessThanOrEqual(5_000);
      expect((await b.holder(key))?.fence).toBe(lease.fence);
      expect(await lease.release()).toBe(true);
    });

    it("lets exactly one of many concurrent contenders win", async () => {
      const key = freshKey("race");
      const attempts = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).tryAcquire(key, { leaseMs: 5_000 })));
      const winners = attempts.filter((x) => x.lease);
      expect(winners).toHaveLength(1);
      for (const x of attempts.filter((y) => y.holder)) expect(x.holder!.fence).toBe(winners[0]!.lease!.fence);
      await winners[0]!.lease!.release();
    });

    it("releases by compare-and-delete: the next holder gets a larger fence, and a second release deletes nothing", async () => {
      const key = freshKey("release");
      const l1 = (await a.tryAcquire(key, { leaseMs: 5_000 })).lease!;
      expect(await l1.release()).toBe(true);
      expect(await b.holder(key)).toBeUndefined();
      const l2 = (await b.tryAcquire(key, { leaseMs: 5_000 })).lease!;
      expect(l2.fence).toBeGreaterThan(l1.fence);
      // The first holder's token is not the current one: nothing is deleted.
      expect(await l1.release()).toBe(false);
      expect((await a.holder(key))?.fence).toBe(l2.fence);
      expect(await l2.release()).toBe(true);
    });

    it("publishes data with the lease, visible to the other replicas", async () => {
      const key = freshKey("data");
      const lease = (await a.tryAcquire(key, { leaseMs: 5_000 })).lease!;
      expect((await b.holder(key))?.data).toBeUndefined();
      expect(await lease.setData('{"temp":"tmp/x"}')).toBe(true);
      expect((await b.holder(key))?.data).toBe('{"temp":"tmp/x"}');
      expect((await b.tryAcquire(key)).holder?.data).toBe('{"temp":"tmp/x"}');
      await lease.release();
      expect(await b.holder(key)).toBeUndefined();
    });

    it("expires a lease that is not renewed; waitFree sees the expiry", async () => {
      const key = freshKey("expiry");
      const lease = (await a.tryAcquire(key, { leaseMs: 300, renew: false })).lease!;
      const started = Date.now();
      expect(await b.waitFree(key, 10_000)).toBe(true);
      const waited = Date.now() - started;
      expect(waited).toBeGreaterThanOrEqual(200);
      expect(waited).toBeLessThan(5_000);
      expect(await b.holder(key)).toBeUndefined();
      expect((await b.tryAcquire(key, { leaseMs: 5_000 })).lease!.fence).toBeGreaterThan(lease.fence);
    });

    it("renews a lease while its job runs, far past its length", async () => {
      const key = freshKey("renew");
      const lease = (await a.tryAcquire(key, { leaseMs: 300 })).lease!;
      // Six renewals ≈ 600 ms: twice the lease length.
      await waitUntil("six renewals", () => lease.renewals >= 6, { timeoutMs: 10_000 });
      const other = await b.tryAcquire(key, { leaseMs: 300 });
      expect(other.holder?.fence).toBe(lease.fence);
      expect(await b.waitFree(key, 100)).toBe(false);
      expect(lease.lost.aborted).toBe(false);
      expect(await lease.release()).toBe(true);
    });

    it("fences a stale holder: once its lease lapsed and was taken, it can neither write data, nor release, nor keep it", async () => {
      const key = freshKey("fence");
      const stale = (await a.tryAcquire(key, { leaseMs: 300, renew: false })).lease!;
      expect(await b.waitFree(key, 10_000)).toBe(true);
      const current = (await b.tryAcquire(key, { leaseMs: 5_000 })).lease!;
      expect(current.fence).toBeGreaterThan(stale.fence);
      expect(await current.setData("current")).toBe(true);

      expect(await stale.setData("stale")).toBe(false);
      expect(stale.lost.aborted).toBe(true);
      expect(await stale.stillHeld()).toBe(false);
      expect(await stale.release()).toBe(false);

      const h = await a.holder(key);
      expect(h).toMatchObject({ fence: current.fence, owner: b.owner, data: "current" });
      expect(await current.stillHeld()).toBe(true);
      await current.release();
    });

    it("a renewing holder learns it lost the lease when another took it (the lost signal)", async () => {
      const key = freshKey("lost");
      const stale = (await a.tryAcquire(key, { leaseMs: 300, renew: false })).lease!;
      expect(await b.waitFree(key, 10_000)).toBe(true);
      const current = (await b.tryAcquire(key, { leaseMs: 5_000 })).lease!;
      // What the renewal loop does every third of the lease:
      await (stale as Lease & { renewNow(): Promise<void> }).renewNow();
      expect(stale.lost.aborted).toBe(true);
      expect((await a.holder(key))?.fence).toBe(current.fence);
      await current.release();
    });

    it("wakes waiters on release, without waiting for the lease to run out", async () => {
      const key = freshKey("wake");
      const lease = (await a.tryAcquire(key, { leaseMs: 30_000 })).lease!;
      const started = Date.now();
      const waiting = b.waitFree(key, 20_000);
      expect(await b.waitFree(key, 50)).toBe(false);
      await lease.release();
      expect(await waiting).toBe(true);
      expect(Date.now() - started).toBeLessThan(5_000);
    });

    it("delivers messages to subscribers on every replica, and none after unsubscribing", async () => {
      const topic = freshKey("topic");
      const gotA: string[] = [];
      const gotB: string[] = [];
      const unsubA = await a.subscribe(topic, (m) => gotA.push(m));
      const unsubB = await b.subscribe(topic, (m) => gotB.push(m));
      await a.publish(topic, "one");
      await waitUntil("both got one", () => gotA.includes("one") && gotB.includes("one"), { timeoutMs: 5_000 });
      unsubA();
      await b.publish(topic, "two");
      await waitUntil("b got two", () => gotB.includes("two"), { timeoutMs: 5_000 });
      // Pub/sub keeps order per connection: "two" reached b after anything sent before it.
      expect(gotA).not.toContain("two");
      unsubB();
    });
  });
}
