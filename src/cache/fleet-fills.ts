// One upstream fetch per blob across the replicas sharing a data directory.
// A miss takes the blob's lease (Coordinator) before going upstream; the
// holder publishes its temp file's name with the lease and its progress on
// the blob's topic, and releases the lease once the fill is settled. A
// replica that finds the lease taken does not go upstream: it follows the
// holder's growing file (FleetFill). If the holder dies, its lease lapses and
// a follower takes over, resuming from the bytes already written. With the
// memory coordinator (no Redis, or Redis away) this reduces to the
// in-process single flight.
import { relative, sep } from "node:path";
import { rm } from "node:fs/promises";
import type { Logger } from "pino";
import { leaseKeys, type Coordinator, type Lease, type LeaseHolder } from "../coordination/coordinator.js";
import type { Digest } from "../oci/digest.js";
import type { Metrics } from "../observability/metrics.js";
import type { BlobFill } from "./blob-fill.js";
import type { BlobStore } from "./blob-store.js";
import { FleetFill, fillTopic, parseFillInfo, type FillInfo, type FillMessage, type ResumeFrom, type TakeOverOutcome } from "./fleet-fill.js";
import type { Layout } from "./layout.js";
import { openResumePoint, type ResumePoint } from "./resume-point.js";

/** Starts the upstream fetch and the local fill of a blob, resuming when given a point. */
export type FillStarter = (resume: ResumePoint | undefined) => Promise<BlobFill>;

export interface FleetFillsOptions {
  readonly coordinator: Coordinator;
  readonly blobs: BlobStore;
  readonly layout: Layout;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly leaseMs: number;
  /** Longest a request waits for a holder that has the lease but no upstream answer yet (then it fetches itself). */
  readonly startWaitMs: number;
  /** Longest a followed file may stand still while Redis is away before it is taken over. */
  readonly stallMs: number;
  readonly pollMs?: number;
}

const PROGRESS_EVERY_MS = 20;

export class FleetFills {
  readonly #o: FleetFillsOptions;
  readonly #followers = new Map<string, FleetFill>();
  /** Publishing and releasing after local fills settle; awaited on close. */
  readonly #settling = new Set<Promise<void>>();
  #closing = false;

  constructor(opts: FleetFillsOptions) {
    this.#o = opts;
  }

  /** Another replica's fill of d that this process follows, if any. */
  followerFor(d: Digest): FleetFill | undefined {
    return this.#followers.get(d.value);
  }

  get followersInFlight(): number {
    return this.#followers.size;
  }

  /**
   * Leads the fleet's fill of d (a local BlobFill) or follows another
   * replica's (a FleetFill); undefined when d got committed meanwhile.
   * Callers serialize per digest within the process (PullThrough's flight).
   */
  async fill(d: Digest, start: FillStarter): Promise<BlobFill | FleetFill | undefined> {
    const deadline = Date.now() + this.#o.startWaitMs;
    let waited = false;
    for (;;) {
      const out = await this.attempt(d, start, undefined);
      if (out.kind === "committed") return undefined;
      if (out.kind === "local") return out.fill;
      if (!waited) {
        waited = true;
        this.#o.metrics.lockWaits.inc();
      }
      if (out.kind === "remote") {
        const existing = this.#followers.get(d.value);
        return existing ?? this.#follow(d, out.holder, out.info, start);
      }
      // The holder has the lease but not yet an upstream answer: wait for its "started".
      const left = deadline - Date.now();
      if (left <= 0) {
        this.#o.logger.warn({ digest: d.value, holder: out.holder.owner }, "the replica holding this blob's lease has not started its fetch: fetching without it");
        return start(undefined);
      }
      await this.#waitStarted(d, Math.min(left, 1000));
    }
  }

  /** One try at becoming the holder of d's fill. */
  async attempt(d: Digest, start: FillStarter, resumeFrom: ResumeFrom | undefined): Promise<TakeOverOutcome> {
    const { blobs, coordinator } = this.#o;
    if (await blobs.stat(d)) return { kind: "committed" };
    const local = blobs.fillFor(d);
    if (local) return { kind: "local", fill: local };
    const attempt = await coordinator.tryAcquire(leaseKeys.blob(d.value), { leaseMs: this.#o.leaseMs });
    if (attempt.holder) {
      const info = parseFillInfo(attempt.holder.data);
      return info ? { kind: "remote", holder: attempt.holder, info } : { kind: "pending", holder: attempt.holder };
    }
    return this.#lead(d, attempt.lease, start, resumeFrom);
  }

  async #lead(d: Digest, lease: Lease, start: FillStarter, resumeFrom: ResumeFrom | undefined): Promise<TakeOverOutcome> {
    let point: ResumePoint | undefined;
    let fill: BlobFill;
    try {
      // The previous holder may have committed just before letting go.
      if (await this.#o.blobs.stat(d)) {
        await lease.release();
        return { kind: "committed" };
      }
      point = resumeFrom ? await openResumePoint(resumeFrom.path, resumeFrom.takeHandle) : undefined;
      fill = await start(point);
    } catch (err) {
      await point?.close();
      await lease.release().catch(() => undefined);
      throw err;
    }
    if (point) this.#o.logger.info({ digest: d.value, offset: point.offset }, "resuming a blob fetch from the bytes a gone replica had written");
    const info: FillInfo = {
      temp: relative(this.#o.layout.root, fill.tempPath).split(sep).join("/"),
      size: fill.expectedSize ?? null,
      from: point && resumeFrom ? { fence: resumeFrom.fence, offset: point.offset } : null,
    };
    this.#announce(d, lease, fill, info, resumeFrom?.path);
    return { kind: "local", fill };
  }

  /** Publishes the fill with the lease and on the topic, keeps followers posted, lets go when it settles. */
  #announce(d: Digest, lease: Lease, fill: BlobFill, info: FillInfo, resumedPath: string | undefined): void {
    const { coordinator, logger } = this.#o;
    const topic = fillTopic(d);
    const f = lease.fence;
    const send = (m: FillMessage): Promise<void> => (lease.lost.aborted ? Promise.resolve() : coordinator.publish(topic, JSON.stringify(m)).catch(() => undefined));
    const announced = lease
      .setData(JSON.stringify(info))
      .then((ok) => (ok ? send({ t: "started", f }) : undefined))
      .catch(() => undefined);
    // At most one progress message per PROGRESS_EVERY_MS, the first at once (followers' first byte waits on it).
    let timer: NodeJS.Timeout | undefined;
    let last = 0;
    const progress = (): void => {
      timer = undefined;
      last = Date.now();
      void send({ t: "progress", f, w: fill.written });
    };
    const onProgress = (): void => {
      if (timer) return;
      const wait = last + PROGRESS_EVERY_MS - Date.now();
      if (wait <= 0) progress();
      else timer = setTimeout(progress, wait);
    };
    fill.on("progress", onProgress);
    const settled = fill.finished
      .then(
        () => {
          // A fill that passed the blob through without caching it (disk full) left nothing to follow.
          const cached = (fill as { cached?: boolean }).cached !== false;
          return cached ? ({ t: "done", f } as const) : ({ t: "failed", f, r: "the blob could not be cached (disk full)" } as const);
        },
        (err: unknown) =>
          this.#closing || (fill as { abandonedByTug?: boolean }).abandonedByTug
            ? ({ t: "abandoned", f } as const)
            : ({ t: "failed", f, r: err instanceof Error ? err.message : String(err) } as const),
      )
      .then(async (m) => {
        clearTimeout(timer);
        fill.off("progress", onProgress);
        await announced;
        await send(m);
        await lease.release().catch(() => undefined);
        // The gone replica's partial file served its purpose.
        if (resumedPath !== undefined) await rm(resumedPath, { force: true }).catch(() => undefined);
      })
      .catch((err: unknown) => logger.warn({ digest: d.value, err }, "could not announce the end of a blob fill"))
      .finally(() => this.#settling.delete(settled));
    this.#settling.add(settled);
  }

  #follow(d: Digest, holder: LeaseHolder, info: FillInfo, start: FillStarter): FleetFill {
    const { coordinator, layout, logger, metrics } = this.#o;
    const pollMs = this.#o.pollMs ?? 200;
    const fleet = new FleetFill(d, layout.blob(d), holder, info, {
      coordinator,
      root: layout.root,
      logger,
      takeOver: (resumeFrom) => this.attempt(d, start, resumeFrom),
      pollMs,
      checkMs: Math.max(pollMs, Math.min(1000, Math.floor(this.#o.leaseMs / 3))),
      stallMs: this.#o.stallMs,
    });
    this.#followers.set(d.value, fleet);
    metrics.coalesced.inc({ kind: "blob" });
    fleet.finished
      .catch((err: unknown) => logger.warn({ digest: d.value, reason: (err as Error).message }, "following another replica's blob fill failed"))
      .finally(() => {
        if (this.#followers.get(d.value) === fleet) this.#followers.delete(d.value);
      });
    return fleet;
  }

  async #waitStarted(d: Digest, ms: number): Promise<void> {
    const { coordinator } = this.#o;
    let wake: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (wake = resolve));
    const unsubscribe = await coordinator.subscribe(fillTopic(d), wake);
    try {
      // The holder announces "started"; if it dies first, its lease lapses (waitFree).
      await Promise.race([started, coordinator.waitFree(leaseKeys.blob(d.value), ms)]);
    } finally {
      unsubscribe();
    }
  }

  /** Marks the start of shutdown: fills abandoned from now on tell followers to take over, not to fail. */
  beginClose(): void {
    this.#closing = true;
  }

  /** Waits (up to graceMs) for followed fills, then abandons the rest; lets settled fills finish announcing. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    const followers = [...this.#followers.values()];
    if (followers.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(followers.map((f) => f.finished.catch(() => undefined))),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
      for (const f of followers) f.abandon("tug is shutting down");
    }
    await Promise.all([...this.#settling]);
  }
}
