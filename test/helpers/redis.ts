// A real redis-server of the test's own, on a free loopback port, with no
// persistence (a restart loses every key, as an outage of a cache's Redis
// would). It can be stopped and started again on the same port, or frozen
// (SIGSTOP) to play a slow Redis. Never the machine's Redis on 6379.
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { Redis } from "ioredis";
import { freePort } from "./ports.js";
import { requireBinary, startDaemon, stopChild } from "./process.js";

export interface RunningRedis {
  readonly port: number;
  readonly url: string;
  /** A plain client for inspecting keys (connects lazily). */
  readonly client: Redis;
  /** Stops the server (SIGKILL: an outage, not a shutdown). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** Freezes it: connections stay open, commands get no answer. */
  pause(): void;
  resume(): void;
  /** Stops it for good and closes the client. */
  close(): Promise<void>;
}

async function ping(port: number): Promise<boolean> {
  const c = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  c.on("error", () => undefined);
  try {
    await c.connect();
    return (await c.ping()) === "PONG";
  } finally {
    c.disconnect();
  }
}

export async function startRedis(): Promise<RunningRedis> {
  const bin = requireBinary("redis-server");
  let port = 0;
  let child: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const daemon = await startDaemon("redis-server", bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"], () => ping(port));
    child = daemon.child;
  };
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      // Another process may take the port between freePort() and the bind.
      if (attempt >= 3 || !(err instanceof Error && /Address already in use/i.test(err.message))) throw err;
    }
  }
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    client,
    async stop() {
      const c = child;
      child = undefined;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = once(c, "exit");
      c.kill("SIGKILL");
      await exited;
    },
    async start() {
      await launch();
    },
    pause() {
      child?.kill("SIGSTOP");
    },
    resume() {
      child?.kill("SIGCONT");
    },
    async close() {
      client.disconnect();
      if (child) {
        child.kill("SIGCONT");
        await stopChild(child, 0);
      }
      child = undefined;
    },
  };
}
