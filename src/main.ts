// Start-up: load the config, build the parts, serve, drain on SIGTERM.
import { serve, type ServerType } from "@hono/node-server";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Config } from "./config/index.js";
import { createLogger } from "./observability/logger.js";
import { createRuntime, type Runtime } from "./runtime.js";
import { Metrics } from "./observability/metrics.js";

export interface RunningServer {
  readonly runtime: Runtime;
  readonly server: ServerType;
  readonly port: number;
  readonly url: string;
  /**
   * Stops accepting at once, lets in-flight responses and blob fills finish for
   * up to graceMs (default 10 s), then cuts what is left, abandons unfinished
   * fills cleanly (temp files removed) and closes the runtime.
   */
  stop(graceMs?: number): Promise<void>;
}

export async function startServer(config: Config, runtime?: Runtime): Promise<RunningServer> {
  const rt = runtime ?? (await createRuntime(config, { logger: createLogger(config.log.level, { format: config.log.format }), metrics: new Metrics({ processMetrics: true }) }));
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve(
      // maxHeaderSize: larger request headers get 431 before any handler runs.
      {
        fetch: rt.app.fetch,
        hostname: config.listen.host,
        port: config.listen.port,
        serverOptions: {
          maxHeaderSize: config.limits.maxHeaderSize,
          // Node checks headersTimeout/requestTimeout only this often (default 30 s): keep it a fraction of them.
          connectionsCheckingInterval: Math.max(250, Math.min(5_000, Math.floor(Math.min(config.limits.clientHeadersTimeout, config.limits.clientRequestTimeout) / 4))),
        },
      },
      () => resolve(s),
    );
    s.once("error", reject);
  });
  const http = server as Server;
  // Slow-loris bounds: a client must send its headers and request promptly.
  http.headersTimeout = config.limits.clientHeadersTimeout;
  http.requestTimeout = config.limits.clientRequestTimeout;
  http.keepAliveTimeout = 65_000;
  const port = (server.address() as AddressInfo).port;
  const host = config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host;
  const url = `http://${host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host}:${port}`;
  return {
    runtime: rt,
    server,
    port,
    url,
    async stop(graceMs = 10_000) {
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      // A keep-alive connection whose response just finished is idle now: close it too.
      const sweep = setInterval(() => http.closeIdleConnections(), 50);
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<"deadline">((resolve) => {
        timer = setTimeout(() => resolve("deadline"), graceMs);
      });
      const outcome = await Promise.race([Promise.all([closed, rt.blobs.drain(graceMs)]), deadline]);
      clearInterval(sweep);
      clearTimeout(timer);
      if (outcome === "deadline") rt.logger.warn({ graceMs }, "shutdown deadline reached: cutting remaining connections and fills");
      http.closeAllConnections();
      await closed;
      await rt.close(0);
    },
  };
}

export async function main(config: Config): Promise<void> {
  const running = await startServer(config);
  const { logger } = running.runtime;
  logger.info({ listen: `${config.listen.host}:${running.port}`, dataDir: config.dataDir, upstreams: Object.keys(config.upstreams) }, "tug is serving");
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    // /readyz turns 503 at once, so a load balancer stops routing here while in-flight requests finish.
    running.runtime.readiness.markDraining();
    const grace = config.limits.shutdownGrace;
    logger.info({ signal, graceMs: grace }, "shutting down: finishing in-flight requests");
    // A backstop only: stop() itself cuts everything at the grace deadline.
    setTimeout(() => {
      logger.warn("shutdown did not complete after the grace period: exiting");
      process.exit(0);
    }, grace + 5_000).unref();
    running.stop(grace).then(
      () => {
        logger.info("shut down cleanly");
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}
