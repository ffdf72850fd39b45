// The physical reference: Debian's nginx serving one file from disk with its
// packaged defaults for static files (sendfile, tcp_nopush), in the foreground,
// with its own prefix, config and logs in a temp dir, on a free loopback port.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../../test/helpers/ports.js";
import { makeTempDir, onTeardown, removeTempDir, requireBinary, startDaemon, stopChild } from "../../test/helpers/process.js";
import { processTree } from "./proc-stats.js";

export interface RunningNginx {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Serves `file` at `${url}/blob`. */
export async function startNginx(file: string): Promise<RunningNginx> {
  const bin = requireBinary("nginx");
  const dir = makeTempDir("nginx");
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const conf = join(dir, "nginx.conf");
    writeFileSync(
      conf,
      [
        // As root the workers would otherwise run as nobody, who cannot enter
        // the 0700 temp dir holding the blob.
        process.getuid?.() === 0 ? "user root;" : "",
        "worker_processes auto;",
        "daemon off;",
        "master_process on;",
        `pid ${join(dir, "nginx.pid")};`,
        `error_log ${join(dir, "error.log")} warn;`,
        "events { worker_connections 1024; }",
        "http {",
        "  sendfile on;",
        "  tcp_nopush on;",
        "  keepalive_requests 100000;",
        "  default_type application/octet-stream;",
        `  access_log ${join(dir, "access.log")};`,
        ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${join(dir, t)};`),
        "  server {",
        `    listen 127.0.0.1:${port};`,
        `    location = /blob { alias ${file}; }`,
        "  }",
        "}",
        "",
      ].join("\n"),
    );
    const url = `http://127.0.0.1:${port}`;
    try {
      const { child } = await startDaemon("nginx", bin, ["-p", dir, "-c", conf, "-e", join(dir, "error.log")], async () => {
        const res = await fetch(`${url}/blob`, { method: "HEAD", signal: AbortSignal.timeout(1000) });
        return res.status === 200;
      });
      // The master dies with us (setpriv's pdeathsig) but its workers would
      // not: if the bench is cut short, kill them too.
      const workers = processTree(child.pid!).slice(1);
      const unregister = onTeardown(() => {
        for (const w of workers) {
          try {
            process.kill(w, "SIGKILL");
          } catch {
            // already gone
          }
        }
      });
      return {
        url,
        pid: child.pid!,
        stop: async () => {
          await stopChild(child);
          unregister();
          await removeTempDir(dir);
        },
      };
    } catch (err) {
      if (attempt < 3 && err instanceof Error && err.message.includes("Address already in use")) continue;
      await removeTempDir(dir);
      throw err;
    }
  }
}
