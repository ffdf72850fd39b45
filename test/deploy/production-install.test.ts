// The container image without a container engine: the Dockerfile's stages are
// carried out in fresh directories (the build stage's `npm run build` on the
// lockfile's full install, then the runtime stage's production-only `npm ci`
// as written, next to the copied build output), and tug is started from the
// result the way the image starts
// it — ENTRYPOINT + CMD, the image's ENV, a mounted config file, a non-root
// user — then probed with the image's own HEALTHCHECK command.
import { spawn, type ChildProcess } from "node:child_process";
import { chmod, chown, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandOf, readDockerfile, runStage, type Dockerfile, type StageResult } from "../helpers/dockerfile.js";
import { startFaultServer, type FaultServer } from "../helpers/fault-server.js";
import { makeFixture } from "../helpers/fixtures.js";
import { freePort } from "../helpers/ports.js";
import { makeTempDir, requireBinary, spawnTied, stopChild, tailBuffer, waitUntil } from "../helpers/process.js";
import { configKeys, parseListen } from "../../src/config/index.js";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
/** The uid:gid tug runs as here (the image's USER is "node"; any non-root user proves the point). */
const NOBODY = 65534;

let dockerfile: Dockerfile;
let runtime: StageResult;
let work: string;
let upstream: FaultServer;
const fx = makeFixture(4096);

beforeAll(async () => {
  dockerfile = await readDockerfile(join(REPO, "Dockerfile"));
  work = makeTempDir("image");
  await chmod(work, 0o755);
  const [build, final] = dockerfile.stages;
  if (!build || !final) throw new Error("the Dockerfile should have a build stage and a runtime stage");
  const baseEnv = { PATH: process.env["PATH"], HOME: process.env["HOME"], npm_config_update_notifier: "false" };
  const buildRoot = join(work, "build");
  await runStage(build, {
    context: REPO,
    root: buildRoot,
    baseEnv,
    onRun: async (cmd, { cwd }) => {
      // The suite runs after `npm ci` of this same package-lock.json: that tree is what the
      // build stage's full install yields, so it is linked rather than installed twice.
      // The runtime stage's production-only install below does run.
      if (/^npm ci\b/.test(cmd) && !cmd.includes("--omit=dev")) {
        await symlink(join(REPO, "node_modules"), join(cwd, "node_modules"));
        return "done";
      }
      if (/^npm run build\b/.test(cmd)) return "run";
      throw new Error(`build stage: unmirrored RUN ${cmd}`);
    },
  });
  runtime = await runStage(final, {
    context: REPO,
    root: join(work, "image"),
    stageRoots: { [build.name ?? "0"]: buildRoot },
    baseEnv,
    onRun: async (cmd, { map }) => {
      if (/^npm ci\b/.test(cmd)) return "run";
      // The volume's mount point, owned by the image's user.
      const m = /^mkdir -p (\S+) && chown \S+ \1$/.exec(cmd);
      if (m?.[1]) {
        await mkdir(map(m[1]), { recursive: true });
        await chown(map(m[1]), NOBODY, NOBODY);
        return "done";
      }
      throw new Error(`runtime stage: unmirrored RUN ${cmd}`);
    },
  });
  upstream = await startFaultServer();
  upstream.on("/v2/library/alpine/manifests/3.20", { kind: "bytes", body: fx.manifest, headers: { "content-type": fx.mediaType } });
}, 180_000);

afterAll(async () => {
  await upstream?.close();
});

const instruction = (keyword: string) => runtime.other.filter((i) => i.keyword === keyword);
const inImage = (p: string): string => (p.startsWith("/") ? join(runtime.root, p) : p);

describe("the Dockerfile", () => {
  it("is multi-stage: builds with dev dependencies, runs with production dependencies only", async () => {
    expect(dockerfile.stages).toHaveLength(2);
    const [build, final] = dockerfile.stages;
    expect(build?.name).toBe("build");
    expect(build?.base).toBe(final?.base);
    expect(build?.base).toMatch(/^node:20/);
    const runs = final!.instructions.filter((i) => i.keyword === "RUN").map((i) => i.rest);
    expect(runs.some((r) => /^npm ci .*--omit=dev/.test(r))).toBe(true);
    const app = join(runtime.root, runtime.workdir);
    for (const dev of ["typescript", "vitest", "tsx", "@types/node"]) {
      await expect(stat(join(app, "node_modules", dev)), dev).rejects.toThrow(/ENOENT/);
    }
    for (const dep of ["hono", "pino", "pino-pretty", "prom-client", "undici", "zod"]) {
      expect((await stat(join(app, "node_modules", dep))).isDirectory()).toBe(true);
    }
    expect((await stat(join(app, "dist", "cli.js"))).isFile()).toBe(true);
    expect((await stat(join(app, "config", "default.yaml"))).isFile()).toBe(true);
  });

  it("runs as a non-root user, keeps the cache on the /data volume, exposes the default port, and has a HEALTHCHECK on /healthz", () => {
    const user = instruction("USER").at(-1)?.rest.trim();
    expect(user).toBeDefined();
    expect(["root", "0", "0:0"]).not.toContain(user);
    expect(instruction("VOLUME").map((i) => commandOf(i.rest))).toEqual([["/data"]]);
    expect(runtime.env["TUG_DATA_DIR"]).toBe("/data");
    const port = parseListen(configKeys.listen.default).port;
    expect(instruction("EXPOSE").map((i) => i.rest.trim())).toEqual([String(port)]);
    expect(parseListen(runtime.env["TUG_LISTEN"] ?? "").port).toBe(port);
    const hc = instruction("HEALTHCHECK")[0];
    expect(hc?.rest).toMatch(/^CMD \[/);
    expect(hc?.rest).toContain("/healthz");
    expect(commandOf(instruction("ENTRYPOINT")[0]?.rest ?? "")).toEqual(["node", "/app/dist/cli.js"]);
    expect(commandOf(instruction("CMD")[0]?.rest ?? "")).toEqual(["serve"]);
  });

  it("the .dockerignore keeps node_modules, dist, data and .git out of the build context", async () => {
    const ignored = (await readFile(join(REPO, ".dockerignore"), "utf8")).split("\n").map((l) => l.trim());
    for (const p of ["node_modules", "dist", "data", ".git"]) expect(ignored).toContain(p);
  });
});

describe("tug started from the production install", () => {
  let child: ChildProcess;
  const output = tailBuffer();
  let url = "";
  let env: NodeJS.ProcessEnv = {};

  beforeAll(async () => {
    // A config file mounted into the image, named by TUG_CONFIG; the image's ENV supplies dataDir and listen.
    const configDir = inImage("/etc/tug");
    await mkdir(configDir, { recursive: true });
    await writeFile(join(configDir, "config.yaml"), `upstreams:\n  docker.io:\n    url: "${upstream.url}"\n    default: true\n`);
    await chmod(configDir, 0o755);
    await chmod(runtime.root, 0o755);
    const port = await freePort();
    env = {
      PATH: process.env["PATH"],
      ...Object.fromEntries(Object.entries(runtime.env).map(([k, v]) => [k, inImage(v)])),
      TUG_CONFIG: join(configDir, "config.yaml"),
      // The one departure from the image: a free loopback port instead of 0.0.0.0:5000.
      TUG_LISTEN: `127.0.0.1:${port}`,
    };
    url = `http://127.0.0.1:${port}`;
    const argv = [...commandOf(instruction("ENTRYPOINT")[0]?.rest ?? ""), ...commandOf(instruction("CMD")[0]?.rest ?? "")].map(inImage);
    const setpriv = requireBinary("setpriv");
    child = spawnTied(setpriv, ["--reuid", String(NOBODY), "--regid", String(NOBODY), "--clear-groups", "--", ...argv], {
      cwd: join(runtime.root, runtime.workdir),
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", output.push);
    child.stderr?.on("data", output.push);
    await waitUntil("tug from the production install", async () => (await fetch(`${url}/healthz`)).ok, { child, logs: output.text });
  }, 60_000);

  afterAll(async () => {
    if (child) await stopChild(child);
  });

  const healthcheck = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const [bin = "", ...args] = commandOf((instruction("HEALTHCHECK")[0]?.rest ?? "").replace(/^CMD\s+/, ""));
      const p = spawn(bin, args, { env, stdio: "ignore" });
      p.once("error", reject);
      p.once("exit", (code) => resolve(code ?? -1));
    });

  it("serves as a non-root user, logs JSON, reads the mounted config and keeps its cache under /data", async () => {
    const res = await fetch(`${url}/v2/library/alpine/manifests/3.20`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(fx.manifest)).toBe(true);
    const ready = (await (await fetch(`${url}/readyz`)).json()) as { status: string; checks: { dataDir: { path: string } } };
    expect(ready.status).toBe("ready");
    expect(ready.checks.dataDir.path).toBe(inImage("/data"));
    const dataDir = await stat(join(inImage("/data"), "manifests"));
    expect(dataDir.uid).toBe(NOBODY);
    const serving = output
      .text()
      .split("\n")
      .find((l) => l.includes("tug is serving"));
    expect(JSON.parse(serving ?? "{}")).toMatchObject({ msg: "tug is serving", dataDir: inImage("/data") });
  });

  it("the image's HEALTHCHECK command passes while tug runs, fails once it stopped, and SIGTERM exits 0", async () => {
    expect(await healthcheck()).toBe(0);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(await healthcheck()).toBe(1);
  });
});
