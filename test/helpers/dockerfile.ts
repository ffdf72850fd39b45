// A small Dockerfile reader and stage runner for machines with no container
// engine: parses the instructions (continuations, ARG defaults, JSON or shell
// form) and carries a stage out in a directory standing for its filesystem —
// WORKDIR, COPY (from the context or an earlier stage), ENV, and the RUN steps
// the caller agrees to run — so a test can build "the image" and start it.
import { cp, mkdir, readFile } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { spawn } from "node:child_process";

export interface Instruction {
  readonly keyword: string;
  /** Flags such as --from=build, --interval=30s. */
  readonly flags: Record<string, string>;
  /** The rest of the line, ARGs substituted. */
  readonly rest: string;
}

export interface Stage {
  readonly base: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

export interface Dockerfile {
  readonly stages: Stage[];
}

export async function readDockerfile(path: string): Promise<Dockerfile> {
  const text = await readFile(path, "utf8");
  const logical: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (current === "" && (line.trim() === "" || line.trim().startsWith("#"))) continue;
    if (line.trim().startsWith("#")) continue; // a comment inside a continued instruction
    if (line.endsWith("\\")) {
      current += line.slice(0, -1) + " ";
      continue;
    }
    logical.push((current + line).trim());
    current = "";
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  const sub = (s: string): string => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a: string | undefined, b: string | undefined) => args.get(a ?? b ?? "") ?? m);
  for (const line of logical) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile: cannot read ${JSON.stringify(line)}`);
    const keyword = (m[1] ?? "").toUpperCase();
    let rest = m[2] ?? "";
    const flags: Record<string, string> = {};
    for (;;) {
      const f = /^--([\w-]+)=(\S+)\s+/.exec(rest);
      if (!f) break;
      flags[f[1] ?? ""] = f[2] ?? "";
      rest = rest.slice(f[0].length);
    }
    if (keyword === "ARG") {
      const [k, v] = rest.split("=", 2);
      if (k !== undefined && !args.has(k)) args.set(k, v ?? "");
      continue;
    }
    if (keyword === "FROM") {
      const parts = sub(rest).split(/\s+/);
      stages.push({ base: parts[0] ?? "", name: parts[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile: ${keyword} before FROM`);
    stage.instructions.push({ keyword, flags, rest: sub(rest) });
  }
  return { stages };
}

/** ["a","b"] (exec form) or a shell-form string → argv. */
export function commandOf(rest: string): string[] {
  return rest.trim().startsWith("[") ? (JSON.parse(rest) as string[]) : ["/bin/sh", "-c", rest];
}

/** KEY=value pairs of an ENV instruction (values may be quoted). */
export function envPairs(rest: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of rest.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    const v = m[2] ?? "";
    out[m[1] ?? ""] = v.startsWith('"') ? (JSON.parse(v) as string) : v;
  }
  return out;
}

export interface StageResult {
  /** The directory standing for the stage's filesystem root. */
  readonly root: string;
  /** ENV as set, values as written (container paths). */
  readonly env: Record<string, string>;
  readonly workdir: string;
  /** Every instruction other than WORKDIR, COPY, ENV and RUN, in order (USER, VOLUME, EXPOSE, HEALTHCHECK, …). */
  readonly other: Instruction[];
}

export interface RunStageOptions {
  /** The build context (the repository). */
  readonly context: string;
  /** Where this stage's filesystem lives. */
  readonly root: string;
  /** Earlier stages' roots by name, for COPY --from. */
  readonly stageRoots?: Record<string, string>;
  /**
   * Decides about a RUN: return "run" to execute it (sh -c, in the mapped
   * WORKDIR, with the stage's ENV), or do its effect yourself and return
   * "done". Anything else fails the stage, so a new RUN step cannot go
   * unmirrored.
   */
  readonly onRun: (command: string, ctx: { map: (p: string) => string; cwd: string }) => Promise<"run" | "done"> | "run" | "done";
  /** Extra environment for RUN steps (PATH, HOME). */
  readonly baseEnv?: NodeJS.ProcessEnv;
}

export async function runStage(stage: Stage, opts: RunStageOptions): Promise<StageResult> {
  const map = (root: string, p: string, cwd: string): string => (isAbsolute(p) ? join(root, p) : join(cwd, p));
  let workdir = "/";
  let cwd = opts.root;
  const env: Record<string, string> = {};
  const other: Instruction[] = [];
  await mkdir(opts.root, { recursive: true });
  for (const ins of stage.instructions) {
    switch (ins.keyword) {
      case "WORKDIR":
        workdir = ins.rest.trim();
        cwd = map(opts.root, workdir, cwd);
        await mkdir(cwd, { recursive: true });
        break;
      case "ENV":
        Object.assign(env, envPairs(ins.rest));
        break;
      case "COPY": {
        const parts = commandOf(ins.rest)[0] === "/bin/sh" ? ins.rest.trim().split(/\s+/) : (JSON.parse(ins.rest) as string[]);
        const dest = parts.pop() ?? "";
        const from = ins.flags["from"];
        const srcRoot = from !== undefined ? opts.stageRoots?.[from] : opts.context;
        if (srcRoot === undefined) throw new Error(`COPY --from=${from}: no such stage`);
        const target = map(opts.root, dest, cwd);
        for (const src of parts) {
          const source = from !== undefined ? map(srcRoot, src, srcRoot) : join(opts.context, src);
          const into = dest.endsWith("/") || parts.length > 1 ? join(target, src.split("/").pop() ?? src) : target;
          await mkdir(dirname(into), { recursive: true });
          await cp(source, into, { recursive: true });
        }
        break;
      }
      case "RUN": {
        const decision = await opts.onRun(ins.rest, { map: (p) => map(opts.root, p, cwd), cwd });
        if (decision === "run") await sh(ins.rest, cwd, { ...opts.baseEnv, ...env });
        break;
      }
      default:
        other.push(ins);
    }
  }
  return { root: opts.root, env, workdir, other };
}

function sh(command: string, cwd: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", command], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`RUN ${command} failed (${code}):\n${out.slice(-4000)}`))));
  });
}
