// What /readyz reports. Two core checks decide readiness: the configuration was
// loaded and the data directory is writable (and tug is not shutting down).
// Components (Redis coordination, upstream circuit breakers, the disk budget, …)
// register status providers whose states are reported in the body but never
// make tug unready: a cache that can serve from disk is ready even while Redis
// or every upstream is down (DESIGN.md: tug keeps serving on Redis loss).
import { unlink, writeFile } from "node:fs/promises";
import type { Logger } from "pino";
import type { Config } from "../config/index.js";
import type { Layout } from "../cache/layout.js";

/** One component's state as shown in /readyz, e.g. { state: "up" } or { state: "down", since: "…" }. */
export interface ComponentStatus {
  /** A short word: up, down, degraded, disabled, unknown, … */
  readonly state: string;
  readonly [detail: string]: unknown;
}

export type StatusProvider = () => ComponentStatus | Promise<ComponentStatus>;

/**
 * The hook other parts register their state on (`runtime.status.register("redis", …)`).
 * A provider that throws or takes longer than the collection timeout is
 * reported as `unknown`, never as an error of /readyz.
 */
export class StatusProviders {
  readonly #providers = new Map<string, StatusProvider>();

  /** Adds or replaces the provider called name; returns a function that removes it. */
  register(name: string, provider: StatusProvider): () => void {
    this.#providers.set(name, provider);
    return () => {
      if (this.#providers.get(name) === provider) this.#providers.delete(name);
    };
  }

  /** Like register, but keeps a provider already registered under name (for built-in fallbacks). */
  registerDefault(name: string, provider: StatusProvider): void {
    if (!this.#providers.has(name)) this.#providers.set(name, provider);
  }

  names(): string[] {
    return [...this.#providers.keys()].sort();
  }

  async collect(timeoutMs = 1000): Promise<Record<string, ComponentStatus>> {
    const out: Record<string, ComponentStatus> = {};
    await Promise.all(
      this.names().map(async (name) => {
        const provider = this.#providers.get(name);
        if (!provider) return;
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<ComponentStatus>((resolve) => {
          timer = setTimeout(() => resolve({ state: "unknown", error: `no answer within ${timeoutMs} ms` }), timeoutMs);
        });
        try {
          out[name] = await Promise.race([Promise.resolve().then(provider), late]);
        } catch (err) {
          out[name] = { state: "unknown", error: err instanceof Error ? err.message : String(err) };
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    return out;
  }
}

export interface CheckResult {
  readonly ok: boolean;
  readonly [detail: string]: unknown;
}

export interface ReadinessReport {
  readonly status: "ready" | "not ready";
  readonly checks: Record<string, CheckResult>;
  readonly components: Record<string, ComponentStatus>;
}

export interface ReadinessDeps {
  readonly config: Config | undefined;
  readonly layout: Layout;
  readonly logger: Logger;
  readonly providers?: StatusProviders;
}

export class Readiness {
  readonly providers: StatusProviders;
  readonly #deps: ReadinessDeps;
  #draining = false;
  #lastReady: boolean | undefined;

  constructor(deps: ReadinessDeps) {
    this.#deps = deps;
    this.providers = deps.providers ?? new StatusProviders();
  }

  /** From SIGTERM on, /readyz answers 503 so load balancers stop sending new requests. */
  markDraining(): void {
    this.#draining = true;
  }

  async check(): Promise<ReadinessReport> {
    const checks: Record<string, CheckResult> = {};
    const { config, layout } = this.#deps;
    checks["config"] = config !== undefined ? { ok: true, upstreams: Object.keys(config.upstreams).length } : { ok: false, error: "no configuration loaded" };
    checks["dataDir"] = await this.#dataDirWritable(layout);
    if (this.#draining) checks["shutdown"] = { ok: false, error: "shutting down" };
    const components = await this.providers.collect();
    const ready = Object.values(checks).every((c) => c.ok);
    if (ready !== this.#lastReady) {
      // One log line per state change, not per probe.
      if (this.#lastReady !== undefined || !ready) {
        const failing = Object.entries(checks).filter(([, c]) => !c.ok).map(([name, c]) => ({ name, error: c["error"] }));
        if (ready) this.#deps.logger.info("ready again");
        else this.#deps.logger.warn({ failing }, "not ready");
      }
      this.#lastReady = ready;
    }
    return { status: ready ? "ready" : "not ready", checks, components };
  }

  /** Writes and removes a probe file in tmp/ (same filesystem as the cache; its name is a temp's, so crash cleanup knows it). */
  async #dataDirWritable(layout: Layout): Promise<CheckResult> {
    const probe = layout.temp("ready");
    try {
      await writeFile(probe, "ok");
      await unlink(probe);
      return { ok: true, path: layout.root };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return { ok: false, path: layout.root, error: code ?? (err instanceof Error ? err.message : String(err)) };
    }
  }
}
