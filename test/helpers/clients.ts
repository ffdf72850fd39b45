// Real registry clients (skopeo, podman, containerd's ctr) run against an
// insecure http registry, each in its own temp dirs with no system state, and
// each returning what it pulled so tests can compare digests.
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { sha256 } from "./images.js";
import { findBinary, makeTempDir, removeTempDir, requireBinary, run, startDaemon, stopChild, type RunResult } from "./process.js";

// ---------------------------------------------------------------- containers/image config

const INSECURE_POLICY = JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] });

/**
 * Environment for skopeo and podman that keeps every piece of configuration
 * and state inside `dir`: registries.conf, containers.conf, storage.conf,
 * auth file, HOME and XDG dirs.
 */
function containersEnv(dir: string, registriesConf: string | undefined): { env: NodeJS.ProcessEnv; policy: string } {
  for (const sub of ["home", "xdg-runtime", "xdg-config", "xdg-data", "tmp"]) mkdirSync(join(dir, sub), { recursive: true });
  const policy = join(dir, "policy.json");
  // podman insists that an explicit auth file exists.
  const authFile = join(dir, "auth.json");
  writeFileSync(authFile, JSON.stringify({ auths: {} }));
  writeFileSync(policy, INSECURE_POLICY);
  let conf = registriesConf;
  if (conf === undefined) {
    conf = join(dir, "registries.conf");
    writeFileSync(conf, "unqualified-search-registries = []\n");
  }
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: join(dir, "home"),
    XDG_RUNTIME_DIR: join(dir, "xdg-runtime"),
    XDG_CONFIG_HOME: join(dir, "xdg-config"),
    XDG_DATA_HOME: join(dir, "xdg-data"),
    TMPDIR: join(dir, "tmp"),
    CONTAINERS_REGISTRIES_CONF: conf,
    REGISTRY_AUTH_FILE: authFile,
  };
  return { env, policy };
}

// As root, containers/image keeps its blob-info cache in /var/lib/containers/cache
// and podman's netavark keeps /run/containers/networks; no flag or env var moves
// either. Where we may (root with CAP_SYS_ADMIN, as here), skopeo and podman run
// in a private mount namespace with a tmpfs over both, so they neither read nor
// leave system state; elsewhere they run directly.
const ISOLATE_SCRIPT = [
  "mkdir -p /var/lib/containers /run/containers",
  "mount -t tmpfs -o mode=0700 tug-test /var/lib/containers",
  "mount -t tmpfs -o mode=0755 tug-test /run/containers",
  'exec "$@"',
].join(" && ");
let isolation: Promise<string | undefined> | undefined;

function isolated(bin: string, args: string[]): Promise<[string, string[]]> {
  isolation ??= (async () => {
    const unshare = findBinary("unshare");
    if (unshare === undefined || process.getuid?.() !== 0) return undefined;
    try {
      await run(unshare, ["--mount", "--propagation", "private", "--", "sh", "-c", ISOLATE_SCRIPT, "sh", "true"], {
        timeoutMs: 5_000,
      });
      return unshare;
    } catch {
      return undefined;
    }
  })();
  return isolation.then((unshare) =>
    unshare === undefined
      ? [bin, args]
      : [unshare, ["--mount", "--propagation", "private", "--", "sh", "-c", ISOLATE_SCRIPT, "sh", bin, ...args]],
  );
}

/** Runs skopeo or podman, isolated from system state when possible. */
async function runContainersTool(
  bin: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<RunResult> {
  const [cmd, argv] = await isolated(bin, args);
  return run(cmd, argv, opts);
}

/**
 * Writes a registries.conf that mirrors `prefix` (a registry host such as
 * docker.io) to `<mirrorHostPort>/<prefix>` over plain http — the podman /
 * CRI-O path-prefix convention — and returns its path. Pass it as
 * `registriesConf` to podmanPull / skopeoCopy.
 */
export function mirrorRegistriesConf(mirrorHostPort: string, prefix = "docker.io", opts: { dir?: string } = {}): string {
  const dir = opts.dir ?? makeTempDir("registries");
  const path = join(dir, "registries.conf");
  writeFileSync(
    path,
    [
      "unqualified-search-registries = []",
      "",
      "[[registry]]",
      `location = "${prefix}"`,
      "",
      "[[registry.mirror]]",
      `location = "${mirrorHostPort}/${prefix}"`,
      "insecure = true",
      "",
    ].join("\n"),
  );
  return path;
}

// ---------------------------------------------------------------- skopeo

export interface SkopeoCopyOptions {
  /** "user:password" for the source registry (--src-creds); default anonymous. */
  creds?: string;
  /** Copy every platform of an index (--all). */
  all?: boolean;
  /** --override-arch / --override-os / --override-variant to pick one platform. */
  arch?: string;
  os?: string;
  variant?: string;
  registriesConf?: string;
  /** Destination layout: "dir" (default, manifests kept byte for byte) or "oci". */
  layout?: "dir" | "oci";
  /** Defaults to false: the registry under test speaks plain http. */
  tlsVerify?: boolean;
  timeoutMs?: number;
}

export interface SkopeoCopyResult {
  dir: string;
  /** Digest of the top-level manifest written (the index with `all`, else the platform manifest). */
  manifestDigest: string;
  manifest: Buffer;
  mediaType: string | undefined;
  /** dir layout with `all`: digests of the per-platform manifests written. */
  instanceDigests: string[];
  /** dir layout: digests of the blobs (configs and layers) written. */
  blobDigests: string[];
  stderr: string;
  cleanup(): Promise<void>;
}

function mediaTypeOf(manifest: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(manifest.toString()) as { mediaType?: unknown };
    return typeof parsed.mediaType === "string" ? parsed.mediaType : undefined;
  } catch {
    return undefined;
  }
}

/** `skopeo copy docker://… dir:<tmp>` (or oci:<tmp>). skopeo verifies every digest it downloads. */
export async function skopeoCopy(src: string, opts: SkopeoCopyOptions = {}): Promise<SkopeoCopyResult> {
  const skopeo = requireBinary("skopeo");
  const work = makeTempDir("skopeo");
  const { env, policy } = containersEnv(work, opts.registriesConf);
  const dest = join(work, "image");
  const layout = opts.layout ?? "dir";
  const global = ["--policy", policy];
  if (opts.arch !== undefined) global.push("--override-arch", opts.arch);
  if (opts.os !== undefined) global.push("--override-os", opts.os);
  if (opts.variant !== undefined) global.push("--override-variant", opts.variant);
  const args = [...global, "copy", `--src-tls-verify=${opts.tlsVerify ?? false}`];
  if (opts.creds !== undefined) args.push("--src-creds", opts.creds);
  if (opts.all) args.push("--all");
  args.push(src, `${layout}:${dest}`);
  const { stderr } = await runContainersTool(skopeo, args, { env, ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}) });

  let manifest: Buffer;
  let manifestDigest: string;
  const instanceDigests: string[] = [];
  const blobDigests: string[] = [];
  if (layout === "dir") {
    manifest = await readFile(join(dest, "manifest.json"));
    manifestDigest = sha256(manifest);
    for (const name of await readdir(dest)) {
      const instance = /^([a-f0-9]{64})\.manifest\.json$/.exec(name);
      if (instance) instanceDigests.push(`sha256:${instance[1]}`);
      else if (/^[a-f0-9]{64}$/.test(name)) blobDigests.push(`sha256:${name}`);
    }
  } else {
    const index = JSON.parse(await readFile(join(dest, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
    const top = index.manifests[0];
    if (top === undefined) throw new Error(`skopeo copy ${src}: empty oci index.json`);
    manifestDigest = top.digest;
    manifest = await readFile(join(dest, "blobs", ...top.digest.split(":")));
  }
  return {
    dir: dest,
    manifestDigest,
    manifest,
    mediaType: mediaTypeOf(manifest),
    instanceDigests: instanceDigests.sort(),
    blobDigests: blobDigests.sort(),
    stderr,
    cleanup: () => removeTempDir(work),
  };
}

export interface SkopeoInspectOptions {
  /** "user:password" (--creds); default anonymous. */
  creds?: string;
  registriesConf?: string;
  arch?: string;
  os?: string;
  tlsVerify?: boolean;
}

/** `skopeo inspect --raw`: the exact manifest bytes the registry serves for a ref, and their digest. */
export async function skopeoInspectRaw(
  ref: string,
  opts: SkopeoInspectOptions = {},
): Promise<{ manifest: Buffer; digest: string; mediaType: string | undefined }> {
  const out = await skopeoRun(ref, opts, ["--raw"]);
  const manifest = Buffer.from(out, "utf8");
  return { manifest, digest: sha256(manifest), mediaType: mediaTypeOf(manifest) };
}

export interface SkopeoInspectResult {
  Name: string;
  /** Digest of the manifest for the selected platform. */
  Digest: string;
  Architecture: string;
  Os: string;
  Layers: string[];
  [key: string]: unknown;
}

/** `skopeo inspect docker://…`: the parsed summary (platform manifest digest, layers, arch). */
export async function skopeoInspect(ref: string, opts: SkopeoInspectOptions = {}): Promise<SkopeoInspectResult> {
  return JSON.parse(await skopeoRun(ref, opts, [])) as SkopeoInspectResult;
}

/** `skopeo list-tags docker://…`: every tag, as skopeo gathers them (following Link pages). */
export async function skopeoListTags(ref: string, opts: Pick<SkopeoInspectOptions, "creds" | "registriesConf" | "tlsVerify"> = {}): Promise<string[]> {
  const skopeo = requireBinary("skopeo");
  const work = makeTempDir("skopeo-tags");
  try {
    const { env, policy } = containersEnv(work, opts.registriesConf);
    const creds = opts.creds !== undefined ? ["--creds", opts.creds] : [];
    const { stdout } = await runContainersTool(skopeo, ["--policy", policy, "list-tags", `--tls-verify=${opts.tlsVerify ?? false}`, ...creds, ref], { env });
    return (JSON.parse(stdout) as { Tags: string[] }).Tags;
  } finally {
    await removeTempDir(work);
  }
}

async function skopeoRun(ref: string, opts: SkopeoInspectOptions, extra: string[]): Promise<string> {
  const skopeo = requireBinary("skopeo");
  const work = makeTempDir("skopeo-inspect");
  try {
    const { env, policy } = containersEnv(work, opts.registriesConf);
    const global = ["--policy", policy];
    if (opts.arch !== undefined) global.push("--override-arch", opts.arch);
    if (opts.os !== undefined) global.push("--override-os", opts.os);
    const creds = opts.creds !== undefined ? ["--creds", opts.creds] : [];
    const { stdout } = await runContainersTool(skopeo, [...global, "inspect", `--tls-verify=${opts.tlsVerify ?? false}`, ...creds, ...extra, ref], { env });
    return stdout;
  } finally {
    await removeTempDir(work);
  }
}

// ---------------------------------------------------------------- podman

export interface PodmanPullOptions {
  /** "user:password" (--creds); default anonymous. */
  creds?: string;
  registriesConf?: string;
  arch?: string;
  os?: string;
  variant?: string;
  /** Defaults to false: the registry under test speaks plain http. */
  tlsVerify?: boolean;
  timeoutMs?: number;
}

export interface PodmanPullResult {
  /** The podman storage root (graphroot) holding the pulled image. */
  dir: string;
  /** Image ID (the config digest, without "sha256:"). */
  imageId: string;
  /** The manifest digest podman recorded (the index's digest when the tag pointed to one). */
  digest: string;
  /** name@digest entries: for an index, both the index and the chosen platform manifest. */
  repoDigests: string[];
  /** The digests out of repoDigests. */
  digests: string[];
  architecture: string;
  os: string;
  stdout: string;
  stderr: string;
  cleanup(): Promise<void>;
}

/**
 * `podman pull` with vfs storage, its own --root/--runroot/--tmpdir and
 * config files in a temp dir (works as root; no system state is read or kept).
 */
export async function podmanPull(ref: string, opts: PodmanPullOptions = {}): Promise<PodmanPullResult> {
  const podman = requireBinary("podman");
  const work = makeTempDir("podman");
  const { env, policy } = containersEnv(work, opts.registriesConf);
  const root = join(work, "root");
  const runroot = join(work, "runroot");
  const libpodTmp = join(work, "libpod-tmp");
  writeFileSync(join(work, "storage.conf"), `[storage]\ndriver = "vfs"\ngraphroot = "${root}"\nrunroot = "${runroot}"\n`);
  writeFileSync(
    join(work, "containers.conf"),
    `[engine]\nevents_logger = "none"\ncgroup_manager = "cgroupfs"\ntmp_dir = "${libpodTmp}"\nimage_copy_tmp_dir = "${join(work, "tmp")}"\n`,
  );
  env["CONTAINERS_STORAGE_CONF"] = join(work, "storage.conf");
  env["CONTAINERS_CONF"] = join(work, "containers.conf");
  const global = [
    "--root", root,
    "--runroot", runroot,
    "--tmpdir", libpodTmp,
    "--storage-driver", "vfs",
    "--events-backend", "none",
    "--cgroup-manager", "cgroupfs",
  ];
  const pullArgs = ["pull", "--quiet", `--tls-verify=${opts.tlsVerify ?? false}`, "--signature-policy", policy];
  if (opts.creds !== undefined) pullArgs.push("--creds", opts.creds);
  if (opts.arch !== undefined) pullArgs.push("--arch", opts.arch);
  if (opts.os !== undefined) pullArgs.push("--os", opts.os);
  if (opts.variant !== undefined) pullArgs.push("--variant", opts.variant);
  const timeout = opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {};
  const pulled = await runContainersTool(podman, [...global, ...pullArgs, ref], { env, ...timeout });
  const imageId = pulled.stdout.trim().split("\n").pop() ?? "";
  const inspected = await runContainersTool(podman, [...global, "image", "inspect", imageId], { env, ...timeout });
  const [info] = JSON.parse(inspected.stdout) as Array<{
    Id: string;
    Digest: string;
    RepoDigests: string[] | null;
    Architecture: string;
    Os: string;
  }>;
  if (info === undefined) throw new Error(`podman image inspect ${imageId}: no output\n${inspected.stderr}`);
  const repoDigests = info.RepoDigests ?? [];
  return {
    dir: root,
    imageId: info.Id,
    digest: info.Digest,
    repoDigests,
    digests: repoDigests.map((r) => r.slice(r.indexOf("@") + 1)),
    architecture: info.Architecture,
    os: info.Os,
    stdout: pulled.stdout,
    stderr: pulled.stderr,
    cleanup: () => removeTempDir(work),
  };
}

// ---------------------------------------------------------------- containerd

export interface RunningContainerd {
  /** The gRPC unix socket, for ctr --address. */
  address: string;
  /** containerd's --root (content store, snapshots). */
  root: string;
  dir: string;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * Starts a private containerd: its own root, state, sockets and opt dir in a
 * temp dir; CRI and the snapshotters that cannot work here are disabled.
 */
export async function startContainerd(): Promise<RunningContainerd> {
  const containerd = requireBinary("containerd");
  const ctr = requireBinary("ctr");
  const dir = makeTempDir("containerd");
  const address = join(dir, "containerd.sock");
  const root = join(dir, "root");
  for (const sub of ["root", "state", "tmp", "opt"]) mkdirSync(join(dir, sub));
  const config = [
    "version = 2",
    `root = "${root}"`,
    `state = "${join(dir, "state")}"`,
    `temp = "${join(dir, "tmp")}"`,
    "disabled_plugins = [",
    '  "io.containerd.grpc.v1.cri",',
    '  "io.containerd.snapshotter.v1.btrfs",',
    '  "io.containerd.snapshotter.v1.zfs",',
    '  "io.containerd.snapshotter.v1.devmapper",',
    '  "io.containerd.snapshotter.v1.aufs",',
    '  "io.containerd.internal.v1.tracing",',
    '  "io.containerd.tracing.processor.v1.otlp",',
    "]",
    "[grpc]",
    `  address = "${address}"`,
    "[ttrpc]",
    `  address = "${address}.ttrpc"`,
    "[debug]",
    '  address = ""',
    "[metrics]",
    '  address = ""',
    "[plugins]",
    '  [plugins."io.containerd.internal.v1.opt"]',
    `    path = "${join(dir, "opt")}"`,
    "",
  ].join("\n");
  const configPath = join(dir, "config.toml");
  writeFileSync(configPath, config);

  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    daemon = await startDaemon(
      "containerd",
      containerd,
      ["--config", configPath],
      async () => existsSync(address) && (await run(ctr, ["--address", address, "version"], { timeoutMs: 5_000 }), true),
    );
  } catch (err) {
    await removeTempDir(dir);
    throw err;
  }
  const { child, logs } = daemon;
  const stop = async () => {
    await stopChild(child);
    await removeTempDir(dir);
  };
  return { address, root, dir, logs, stop };
}

export interface HostsTomlOptions {
  /** The registry host being mirrored; the file goes to <dir>/<upstream>/hosts.toml. */
  upstream?: string;
  /** The fallback server line; default https://registry-1.docker.io (unreachable here). */
  server?: string;
  /** Write into this hosts dir instead of a fresh temp dir. */
  dir?: string;
  capabilities?: string[];
}

/**
 * Writes `<dir>/docker.io/hosts.toml` with the given mirror as the first host
 * and returns the hosts dir, for `ctr images pull --hosts-dir`. containerd
 * then requests `/v2/<name>/manifests/<ref>?ns=docker.io` from the mirror.
 */
export function hostsToml(mirrorUrl: string, opts: HostsTomlOptions = {}): string {
  const dir = opts.dir ?? makeTempDir("hosts");
  const upstream = opts.upstream ?? "docker.io";
  const server = opts.server ?? (upstream === "docker.io" ? "https://registry-1.docker.io" : `https://${upstream}`);
  const capabilities = (opts.capabilities ?? ["pull", "resolve"]).map((c) => `"${c}"`).join(", ");
  mkdirSync(join(dir, upstream), { recursive: true });
  writeFileSync(
    join(dir, upstream, "hosts.toml"),
    `server = "${server}"\n\n[host."${mirrorUrl.replace(/\/+$/, "")}"]\n  capabilities = [${capabilities}]\n`,
  );
  return dir;
}

export interface CtrPullOptions {
  /** "user:password" (--user), sent to every host including mirrors. */
  user?: string;
  hostsDir?: string;
  /** Use http for the registry named in the ref (not needed for http:// hosts in hosts.toml). */
  plainHttp?: boolean;
  /** A running containerd; without one, a private containerd runs just for this pull. */
  containerd?: RunningContainerd;
  /** Unpack into the native snapshotter (default true). */
  unpack?: boolean;
  platform?: string;
  allPlatforms?: boolean;
  namespace?: string;
  timeoutMs?: number;
}

export interface CtrPullResult {
  ref: string;
  /** Digest of the image's target (the index for a multi-platform tag). */
  digest: string;
  mediaType: string;
  /** `ctr images check` says the image is unpacked in the native snapshotter. */
  unpacked: boolean;
  /** Committed native snapshot keys (chain IDs of the unpacked layers). */
  snapshots: string[];
  stdout: string;
  stderr: string;
}

function tableRow(table: string, first: string): string[] | undefined {
  for (const line of table.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[0] === first) return cols;
  }
  return undefined;
}

/** `ctr images pull [--hosts-dir] [--plain-http] --snapshotter native <ref>` (ref fully qualified). */
export async function ctrPull(ref: string, opts: CtrPullOptions = {}): Promise<CtrPullResult> {
  const ctr = requireBinary("ctr");
  const daemon = opts.containerd ?? (await startContainerd());
  try {
    const base = ["--address", daemon.address, "--namespace", opts.namespace ?? "tug-test"];
    const timeout = opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {};
    const args = [...base, "images", "pull", "--snapshotter", "native"];
    if (opts.hostsDir !== undefined) args.push("--hosts-dir", opts.hostsDir);
    if (opts.plainHttp) args.push("--plain-http");
    if (opts.user !== undefined) args.push("--user", opts.user);
    if (opts.unpack === false) args.push("--skip-unpack");
    if (opts.platform !== undefined) args.push("--platform", opts.platform);
    if (opts.allPlatforms) args.push("--all-platforms");
    args.push(ref);
    const pulled = await run(ctr, args, timeout);
    const listed = await run(ctr, [...base, "images", "ls"], timeout);
    const row = tableRow(listed.stdout, ref);
    if (row === undefined || row[1] === undefined || row[2] === undefined) {
      throw new Error(`ctr images ls: ${ref} not listed after pull:\n${listed.stdout}`);
    }
    const checked = await run(ctr, [...base, "images", "check", "--snapshotter", "native"], timeout);
    const checkRow = tableRow(checked.stdout, ref);
    const snaps = await run(ctr, [...base, "snapshots", "--snapshotter", "native", "ls"], timeout);
    const snapshots = snaps.stdout
      .split("\n")
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((cols) => cols.at(-1) === "Committed")
      .map((cols) => cols[0] ?? "");
    return {
      ref,
      digest: row[2],
      mediaType: row[1],
      unpacked: checkRow?.at(-1) === "true",
      snapshots,
      stdout: pulled.stdout,
      stderr: pulled.stderr,
    };
  } catch (err) {
    if (err instanceof Error && opts.containerd === undefined) err.message += `\ncontainerd log:\n${daemon.logs().slice(-3000)}`;
    throw err;
  } finally {
    if (opts.containerd === undefined) await daemon.stop();
  }
}
