// A blob fill another replica is doing, followed from the shared data
// directory: the holder publishes its temp file's name with its lease
// (FillInfo) and wakes followers through pub/sub as it writes; a follower
// reads the growing file, which is as far as the bytes have got. When the
// holder dies its lease lapses and a follower takes over (resuming from the
// dead replica's bytes), so the file being followed can change: a reader that
// has already sent bytes from the old file checks that the new one holds the
// same bytes before going on. As with a local fill, the last byte is held
// back until the blob is committed (renamed into place after verification),
// so no client ever gets a clean response of wrong bytes.
import { EventEmitter } from "node:events";
import { open, stat, type FileHandle } from "node:fs/promises";
import { isAbsolute, join, normalize } from "node:path";
import { Readable } from "node:stream";
import type { Logger } from "pino";
import type { Coordinator, LeaseHolder } from "../coordination/coordinator.js";
import { leaseKeys } from "../coordination/coordinator.js";
import type { Digest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { nextFillEvent } from "./fill-events.js";
import type { BlobFill, FillState } from "./blob-fill.js";

/** What a holder publishes with its lease. */
export interface FillInfo {
  /** The temp file, relative to dataDir (replicas may mount it at different paths). */
  readonly temp: string;
  /** Total size from the upstream, when it said. */
  readonly size: number | null;
  /** Resumed from an earlier holder's file: its fence and how many bytes were reused. */
  readonly from: { readonly fence: number; readonly offset: number } | null;
}

/** Messages on the fill's topic; `f` is the sender's fence. */
export type FillMessage =
  | { readonly t: "started"; readonly f: number }
  | { readonly t: "progress"; readonly f: number; readonly w: number }
  | { readonly t: "done"; readonly f: number }
  | { readonly t: "failed"; readonly f: number; readonly r: string }
  /** The holder gave up for reasons of its own (shutting down): a follower should take over. */
  | { readonly t: "abandoned"; readonly f: number };

export function fillTopic(d: Digest): string {
  return `fill:${d.value}`;
}

export function parseFillInfo(data: string | undefined): FillInfo | undefined {
  if (data === undefined) return undefined;
  try {
    const v = JSON.parse(data) as Partial<FillInfo>;
    // A path that climbs out of dataDir is not a temp file of ours.
    if (typeof v.temp !== "string" || isAbsolute(v.temp) || normalize(v.temp).startsWith("..")) return undefined;
    const size = typeof v.size === "number" && v.size >= 0 ? v.size : null;
    const from = v.from && typeof v.from.fence === "number" && typeof v.from.offset === "number" ? v.from : null;
    return { temp: v.temp, size, from };
  } catch {
    return undefined;
  }
}

function parseMessage(s: string): FillMessage | undefined {
  try {
    const m = JSON.parse(s) as FillMessage;
    return typeof m.f === "number" && typeof m.t === "string" ? m : undefined;
  } catch {
    return undefined;
  }
}

/** The file of a holder that is gone, to resume from. */
export interface ResumeFrom {
  readonly path: string;
  readonly fence: number;
  /** Hands over the follower's open handle of that file (for when its name is gone already). */
  readonly takeHandle?: () => FileHandle | undefined;
}

/** What taking over found: the blob already committed, our own new fill, another replica's, or a holder still starting. */
export type TakeOverOutcome =
  | { readonly kind: "committed" }
  | { readonly kind: "local"; readonly fill: BlobFill }
  | { readonly kind: "remote"; readonly holder: LeaseHolder; readonly info: FillInfo }
  | { readonly kind: "pending"; readonly holder: LeaseHolder };

export interface FleetFillDeps {
  readonly coordinator: Coordinator;
  readonly root: string;
  readonly logger: Logger;
  /** Tries to become the holder, resuming from the file of the one that is gone. */
  readonly takeOver: (resumeFrom: ResumeFrom | undefined) => Promise<TakeOverOutcome>;
  /** Fallback poll of the followed file, for when a pub/sub message is lost. */
  readonly pollMs: number;
  /** How often the holder's lease is checked for life. */
  readonly checkMs: number;
  /** With Redis away no lease is visible: a file that has not grown for this long is taken over. */
  readonly stallMs: number;
}

type Source =
  | { readonly kind: "remote"; readonly fence: number; readonly owner: string; readonly path: string; fh: FileHandle | undefined }
  | { readonly kind: "local"; readonly fill: BlobFill };

export class FleetFill extends EventEmitter {
  readonly digest: Digest;
  readonly finalPath: string;
  state: FillState = "running";
  error: Error | undefined;
  /** Bytes readable at `path` (for the current generation). */
  written = 0;
  /** Total size, when the upstream said. */
  size: number | undefined;
  /** The file readers read. */
  path: string;
  /** Grows whenever `path` names a different file whose first bytes readers must check. */
  generation = 0;
  /** Settles when the blob is committed (resolves) or the fill failed (rejects). */
  readonly finished: Promise<void>;

  readonly #deps: FleetFillDeps;
  #source: Source;
  #lastGrowth = Date.now();
  #lastCheck = Date.now();
  #wake: (() => void) | undefined;
  /** A message came while the driver was busy: its next nap is skipped. */
  #woken = false;

  constructor(digest: Digest, finalPath: string, holder: LeaseHolder, info: FillInfo, deps: FleetFillDeps) {
    super();
    this.setMaxListeners(0);
    this.digest = digest;
    this.finalPath = finalPath;
    this.#deps = deps;
    this.path = join(deps.root, info.temp);
    this.size = info.size ?? undefined;
    this.#source = { kind: "remote", fence: holder.fence, owner: holder.owner, path: this.path, fh: undefined };
    this.finished = new Promise<void>((resolve, reject) => {
      this.once("done", resolve);
      this.once("failed", reject);
    });
    this.finished.catch(() => undefined);
    void this.#drive();
  }

  /** Like BlobFill.started(): resolves once a byte can be served (the last is held back), rejects if the fill fails first. */
  async started(): Promise<void> {
    while (this.state === "running" && this.written < 2) {
      await nextFillEvent(this);
    }
    if (this.state === "failed") throw this.error ?? new Error("fill failed");
  }

  /** Bytes [start, end] for one client. */
  follow(start: number, endInclusive: number): Readable {
    return new FleetReader(this, start, endInclusive);
  }

  /** Stops following (shutdown): readers get a clean error. */
  abandon(reason: string): void {
    this.#fail(new RegistryError("UNAVAILABLE", reason));
  }

  // ---- the driver ----------------------------------------------------------

  async #drive(): Promise<void> {
    const { coordinator } = this.#deps;
    let unsubscribe: (() => void) | undefined;
    try {
      unsubscribe = await coordinator.subscribe(fillTopic(this.digest), (m) => this.#onMessage(m));
      while (this.state === "running") {
        const src = this.#source;
        if (src.kind === "local") {
          await this.#followLocal(src.fill);
          break;
        }
        await this.#refresh(src);
        if (this.state !== "running" || this.#source !== src) continue;
        if (Date.now() - this.#lastCheck >= this.#deps.checkMs) {
          this.#lastCheck = Date.now();
          await this.#checkHolder(src);
          if (this.state !== "running" || this.#source !== src) continue;
        }
        await this.#nap(this.#deps.pollMs);
      }
    } catch (err) {
      this.#fail(err);
    } finally {
      unsubscribe?.();
      const src = this.#source;
      if (src.kind === "remote") await this.#closeRemote(src);
    }
  }

  #onMessage(raw: string): void {
    const m = parseMessage(raw);
    const src = this.#source;
    if (!m || this.state !== "running" || src.kind !== "remote") return;
    if (m.f !== src.fence) {
      // Another holder (a takeover elsewhere): look at the lease now. A stale holder's messages change nothing.
      if (m.f > src.fence) this.#lastCheck = 0;
      this.#poke();
      return;
    }
    if (m.t === "failed") {
      this.#fail(new RegistryError("UNAVAILABLE", `the replica fetching this blob failed: ${m.r}`, { status: 502 }));
      return;
    }
    if (m.t === "abandoned") this.#lastCheck = 0;
    this.#poke();
  }

  #poke(): void {
    if (this.#wake) this.#wake();
    else this.#woken = true;
  }

  #nap(ms: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    }).finally(() => {
      this.#wake = undefined;
    });
  }

  /** Catches up with the followed file (its size) and with the final file (committed?). */
  async #refresh(src: Source & { kind: "remote" }): Promise<void> {
    if (!src.fh) {
      try {
        src.fh = await open(src.path, "r");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
        // Not created yet, or already renamed into place (checked below), or removed.
      }
    }
    if (src.fh) {
      const { size } = await src.fh.stat();
      if (size > this.written && this.#source === src) {
        this.written = size;
        this.#lastGrowth = Date.now();
      }
    }
    const final = await stat(this.finalPath).catch(() => undefined);
    if (final?.isFile() && this.state === "running" && this.#source === src) {
      await this.#committed(final, src.fh);
      return;
    }
    this.emit("progress");
  }

  /** The blob is in its final place, verified by whoever renamed it there. */
  async #committed(final: { ino: number; dev: number; size: number }, fh: FileHandle | undefined): Promise<void> {
    const mine = fh ? await fh.stat().catch(() => undefined) : undefined;
    if (this.state !== "running") return;
    // The followed temp file itself was renamed into place: readers' handles already hold the final bytes.
    const same = mine !== undefined && mine.ino === final.ino && mine.dev === final.dev;
    if (!same) this.generation++;
    this.path = this.finalPath;
    this.written = final.size;
    this.size = final.size;
    this.state = "done";
    this.emit("done");
  }

  async #checkHolder(src: Source & { kind: "remote" }): Promise<void> {
    const { coordinator } = this.#deps;
    if (!coordinator.shared) {
      // Redis is away: no lease is visible, only the file's growth shows the holder is alive.
      if (Date.now() - this.#lastGrowth > this.#deps.stallMs) {
        this.#deps.logger.warn({ digest: this.digest.value }, "followed blob fill stalled while redis is away: taking it over");
        await this.#takeOver(src);
      }
      return;
    }
    const h = await coordinator.holder(leaseKeys.blob(this.digest.value));
    if (this.state !== "running" || this.#source !== src) return;
    // Redis failed during the call: "no holder" came from memory and says nothing about the other replica.
    if (!coordinator.shared) return;
    if (h?.fence === src.fence) return; // alive: it renews its lease
    if (h) {
      const info = parseFillInfo(h.data);
      if (info) await this.#adoptRemote(h, info);
      return; // no info yet: a new holder is starting; look again soon
    }
    // Free: released after committing (the final file shows it) or lapsed with its holder.
    const final = await stat(this.finalPath).catch(() => undefined);
    if (final?.isFile()) {
      await this.#committed(final, src.fh);
      return;
    }
    this.#deps.logger.warn({ digest: this.digest.value, holder: src.owner }, "the replica fetching this blob is gone: taking the fetch over");
    await this.#takeOver(src);
  }

  async #takeOver(src: Source & { kind: "remote" }): Promise<void> {
    this.#lastGrowth = Date.now();
    const out = await this.#deps.takeOver({
      path: src.path,
      fence: src.fence,
      takeHandle: () => {
        const fh = src.fh;
        src.fh = undefined;
        return fh;
      },
    });
    if (this.state !== "running" || this.#source !== src) return;
    switch (out.kind) {
      case "committed": {
        const final = await stat(this.finalPath);
        await this.#committed(final, src.fh);
        return;
      }
      case "local":
        await this.#adoptLocal(out.fill);
        return;
      case "remote":
        if (out.holder.fence !== src.fence) await this.#adoptRemote(out.holder, out.info);
        return;
      case "pending":
        this.#lastCheck = 0;
        return;
    }
  }

  async #adoptRemote(holder: LeaseHolder, info: FillInfo): Promise<void> {
    const old = this.#source;
    const path = join(this.#deps.root, info.temp);
    this.#source = { kind: "remote", fence: holder.fence, owner: holder.owner, path, fh: undefined };
    if (old.kind === "remote") await this.#closeRemote(old);
    this.#switchTo(path, 0, info.size ?? undefined);
    this.#lastGrowth = Date.now();
  }

  async #adoptLocal(fill: BlobFill): Promise<void> {
    const old = this.#source;
    this.#source = { kind: "local", fill };
    if (old.kind === "remote") await this.#closeRemote(old);
    this.#switchTo(fill.tempPath, fill.written, fill.expectedSize);
  }

  #switchTo(path: string, written: number, size: number | undefined): void {
    this.path = path;
    this.written = written;
    if (size !== undefined) this.size = size;
    this.generation++;
    this.emit("progress");
  }

  async #followLocal(fill: BlobFill): Promise<void> {
    const onProgress = (): void => {
      this.written = fill.written;
      this.emit("progress");
    };
    fill.on("progress", onProgress);
    try {
      await fill.finished;
      if (this.state !== "running") return;
      const final = await stat(this.finalPath).catch(() => undefined);
      if (!final) throw new RegistryError("UNAVAILABLE", "the blob could not be cached (disk full?); retry", { status: 503 });
      // Our own temp file was renamed into place: same bytes, no check needed.
      this.path = this.finalPath;
      this.written = fill.written;
      this.size = fill.written;
      this.state = "done";
      this.emit("done");
    } catch (err) {
      this.#fail(err);
    } finally {
      fill.off("progress", onProgress);
    }
  }

  async #closeRemote(src: Source & { kind: "remote" }): Promise<void> {
    const fh = src.fh;
    src.fh = undefined;
    await fh?.close().catch(() => undefined);
  }

  #fail(err: unknown): void {
    if (this.state !== "running") return;
    this.error = err instanceof Error ? err : new Error(String(err));
    this.state = "failed";
    this.#wake?.();
    this.emit("failed", this.error);
  }
}

const READ_CHUNK = 1 << 20;

/**
 * Streams bytes [start, end] of a followed fill. Until the blob is committed
 * the last byte is held back; when the followed file changes, the bytes
 * already sent are compared with the new file's before anything more is sent.
 */
export class FleetReader extends Readable {
  readonly #fill: FleetFill;
  readonly #start: number;
  readonly #end: number;
  #pos: number;
  #fh: FileHandle | undefined;
  #gen = -1;
  #pumping = false;

  constructor(fill: FleetFill, start: number, endInclusive: number) {
    super({ highWaterMark: READ_CHUNK });
    this.#fill = fill;
    this.#start = start;
    this.#pos = start;
    this.#end = endInclusive;
  }

  override _read(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    this.#pump().then(
      () => {
        this.#pumping = false;
      },
      (err: unknown) => {
        this.#pumping = false;
        this.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  async #pump(): Promise<void> {
    const fill = this.#fill;
    for (;;) {
      if (this.destroyed) return;
      if (fill.state === "failed") throw fill.error ?? new Error("fill failed");
      if (this.#pos > this.#end) {
        this.push(null);
        return;
      }
      if (this.#gen !== fill.generation || !this.#fh) {
        if ((await this.#openCurrent()) === "wait") await this.#event();
        continue;
      }
      const limit = fill.state === "done" ? fill.written : fill.written - 1;
      const upto = Math.min(limit, this.#end + 1);
      if (this.#pos < upto) {
        const n = Math.min(READ_CHUNK, upto - this.#pos);
        const buf = Buffer.allocUnsafe(n);
        const { bytesRead } = await this.#fh.read(buf, 0, n, this.#pos);
        if (bytesRead === 0) {
          // Sizes come from the same file; a short read can only be a race with a switch.
          await this.#event();
          continue;
        }
        this.#pos += bytesRead;
        if (!this.push(bytesRead === n ? buf : buf.subarray(0, bytesRead))) return;
        continue;
      }
      if (fill.state === "done") {
        this.push(null);
        return;
      }
      await this.#event();
    }
  }

  /** Opens the file the fill now names. "wait": it is not there yet and nothing has changed since; wait for news. */
  async #openCurrent(): Promise<"ok" | "retry" | "wait"> {
    const fill = this.#fill;
    const { generation: gen, path, state } = fill;
    let fh: FileHandle;
    try {
      fh = await open(path, "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      // Not created yet, or renamed / replaced meanwhile (then the fill already says so).
      return fill.generation !== gen || fill.path !== path || fill.state !== state ? "retry" : "wait";
    }
    if (fill.generation !== gen) {
      await fh.close();
      return "retry"; // moved on meanwhile: open the newer one
    }
    const old = this.#fh;
    if (old && this.#pos > this.#start) {
      const checked = await this.#sameSentBytes(old, fh, gen);
      if (checked === "moved") {
        await fh.close();
        return "retry";
      }
      if (checked === "differ") {
        await fh.close();
        throw new RegistryError("UNAVAILABLE", "the blob's bytes changed while it was being fetched; retry", { status: 502 });
      }
    }
    this.#fh = fh;
    this.#gen = gen;
    await old?.close().catch(() => undefined);
    return "ok";
  }

  /** Whether the new file starts with the bytes this reader already sent from the old one. */
  async #sameSentBytes(old: FileHandle, fresh: FileHandle, gen: number): Promise<"same" | "differ" | "moved"> {
    const [a, b] = await Promise.all([old.stat(), fresh.stat()]);
    if (a.ino === b.ino && a.dev === b.dev) return "same";
    const fill = this.#fill;
    // Wait until the new file has come as far as this reader had.
    while (fill.state !== "done" && fill.written < this.#pos) {
      if (fill.state === "failed") throw fill.error ?? new Error("fill failed");
      if (fill.generation !== gen) return "moved";
      await this.#event();
      if (this.destroyed) return "moved";
    }
    if (fill.generation !== gen) return "moved";
    const x = Buffer.allocUnsafe(READ_CHUNK);
    const y = Buffer.allocUnsafe(READ_CHUNK);
    for (let pos = this.#start; pos < this.#pos; ) {
      const n = Math.min(READ_CHUNK, this.#pos - pos);
      const [ra, rb] = await Promise.all([old.read(x, 0, n, pos), fresh.read(y, 0, n, pos)]);
      if (ra.bytesRead !== n || rb.bytesRead !== n || !x.subarray(0, n).equals(y.subarray(0, n))) return "differ";
      pos += n;
    }
    return "same";
  }

  #event(): Promise<void> {
    const fill = this.#fill;
    return nextFillEvent(fill, this);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh) fh.close().then(() => cb(err), () => cb(err));
    else cb(err);
  }
}
