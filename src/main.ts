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
  stop(): Promise<void>;
}

export async function startServer(config: Config, runtime?: Runtime): Promise<RunningServer> {
  const rt = runtime ?? (await createRuntime(config, { logger: createLogger(config.log.level), metrics: new Metrics({ processMetrics: true }) }));
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: rt.app.fetch, hostname: config.listen.host, port: config.listen.port }, () => resolve(s));
    s.once("error", reject);
  });
  const http = server as Server;
  // Slow-loris bounds: a client must send its headers and request promptly.
  http.headersTimeout = 30_000;
  http.requestTimeout = 60_000;
  http.keepAliveTimeout = 65_000;
  const port = (server.address() as AddressInfo).port;
  const host = config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host;
  const url = `http://${host === "0.0.0.0" || host === "[::]" ? "127.0.0.1" : host}:${port}`;
  return {
    runtime: rt,
    server,
    port,
    url,
    async stop() {
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeIdleConnections();
      });
      await rt.close();
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
    logger.info({ signal }, "shutting down: finishing in-flight requests");
    const deadline = setTimeout(() => {
      logger.warn("shutdown deadline reached: closing remaining connections");
      (running.server as Server).closeAllConnections();
    }, 25_000);
    deadline.unref();
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}
