// deploy/: the kustomize bases built with the real kustomize (kubectl
// kustomize), every object checked against the app's real config schema and
// endpoints; the node-side mirror files proven with real containerd and podman
// pulling through tug; daemon.json and docker-compose.yaml parsed and checked.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { ctrPull, podmanPull } from "../helpers/clients.js";
import { readDockerfile, envPairs } from "../helpers/dockerfile.js";
import { seedStandardImages, type StandardImages } from "../helpers/images.js";
import { makeTempDir, requireBinary } from "../helpers/process.js";
import { startRegistry, type RunningRegistry } from "../helpers/registry.js";
import { startTug, type TestTug } from "../helpers/tug.js";
import { configKeys, parseConfig, parseListen, unknownEnvOverrides } from "../../src/config/index.js";

const run = promisify(execFile);
const REPO = fileURLToPath(new URL("../..", import.meta.url));
const DEPLOY = join(REPO, "deploy");
const DEFAULT_PORT = parseListen(configKeys.listen.default).port;

type Obj = Record<string, any>;

async function kustomize(dir: string): Promise<Obj[]> {
  const kubectl = requireBinary("kubectl");
  const { stdout } = await run(kubectl, ["kustomize", join(DEPLOY, dir)]);
  return parseAllDocuments(stdout).map((d) => d.toJS() as Obj);
}

const find = (objs: Obj[], kind: string, name: string): Obj => {
  const o = objs.find((x) => x["kind"] === kind && (x["metadata"]?.name === name || x["metadata"]?.name?.startsWith(`${name}-`)));
  if (!o) throw new Error(`no ${kind} ${name} in ${objs.map((x) => `${x["kind"]}/${x["metadata"]?.name}`).join(", ")}`);
  return o;
};

const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** The TUG_* variables a container sets, as an env object. */
const containerEnv = (c: Obj): Record<string, string> => Object.fromEntries(((c["env"] ?? []) as Obj[]).filter((e) => e["value"] !== undefined).map((e) => [e["name"], e["value"]]));

let tug: TestTug;

beforeAll(async () => {
  tug = await startTug({ upstreams: { "docker.io": "http://127.0.0.1:9" } });
});
afterAll(async () => {
  await tug?.stop();
});

describe("deploy/kubernetes/base", () => {
  let objs: Obj[];
  let deployment: Obj;
  let container: Obj;
  let config: ReturnType<typeof parseConfig>;

  beforeAll(async () => {
    objs = await kustomize("kubernetes/base");
    deployment = find(objs, "Deployment", "tug");
    container = deployment["spec"].template.spec.containers.find((c: Obj) => c["name"] === "tug");
    const cm = find(objs, "ConfigMap", "tug-config");
    const env = containerEnv(container);
    expect(unknownEnvOverrides(env)).toEqual([]);
    // The real schema, with the container's own environment: a bad key or value fails here, not in the cluster.
    config = parseConfig(parseYaml(cm["data"]["config.yaml"] as string), env);
  });

  it("has a tug Deployment, Redis, a Service, a ConfigMap, a PodDisruptionBudget and a ReadWriteMany volume, all in one namespace", () => {
    const kinds = objs.map((o) => `${o["kind"]}/${o["metadata"].name}`);
    for (const k of ["Namespace/tug", "PersistentVolumeClaim/tug-data", "Deployment/tug", "Deployment/tug-redis", "Service/tug", "Service/tug-redis", "PodDisruptionBudget/tug"]) {
      expect(kinds).toContain(k);
    }
    expect(kinds.some((k) => /^ConfigMap\/tug-config-[a-z0-9]+$/.test(k))).toBe(true); // hashed: a config change rolls the pods
    for (const o of objs.filter((x) => x["kind"] !== "Namespace")) expect(o["metadata"].namespace).toBe("tug");
    expect(find(objs, "PersistentVolumeClaim", "tug-data")["spec"].accessModes).toEqual(["ReadWriteMany"]);
  });

  it("runs several replicas of the image on the shared volume, mounted where the config's dataDir points, with the config file TUG_CONFIG names", () => {
    const spec = deployment["spec"];
    expect(spec.replicas).toBeGreaterThanOrEqual(2);
    expect(matches(spec.selector.matchLabels, spec.template.metadata.labels)).toBe(true);
    expect(container["image"]).toBe("registry.example.com/platform/tug:0.1.0");
    expect(container["args"]).toEqual(["serve"]);
    const volumes = spec.template.spec.volumes as Obj[];
    const mountOf = (volume: string): string => (container["volumeMounts"] as Obj[]).find((m) => m["name"] === volume)?.["mountPath"];
    const data = volumes.find((v) => v["persistentVolumeClaim"]?.claimName === "tug-data");
    expect(mountOf(data?.["name"])).toBe(config.dataDir);
    const cfgVolume = volumes.find((v) => v["configMap"]?.name?.startsWith("tug-config-"));
    expect(join(mountOf(cfgVolume?.["name"]), "config.yaml")).toBe(containerEnv(container)["TUG_CONFIG"]);
    expect(config.redis.url).not.toBe(""); // replicas coordinate through Redis
    // TUG_* service-link variables would be read as configuration overrides.
    expect(spec.template.spec.enableServiceLinks).toBe(false);
  });

  it("probes /healthz (liveness, startup) and /readyz (readiness) on the port tug listens on; both answer 200 in the real app", async () => {
    const port = container["ports"].find((p: Obj) => p["name"] === "http");
    expect(port.containerPort).toBe(config.listen.port);
    expect(container["livenessProbe"].httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(container["startupProbe"].httpGet).toEqual({ path: "/healthz", port: "http" });
    expect(container["readinessProbe"].httpGet).toEqual({ path: "/readyz", port: "http" });
    for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
      const res = await fetch(`${tug.url}${container[probe].httpGet.path}`);
      expect(res.status, probe).toBe(200);
    }
    expect(deployment["spec"].template.metadata.annotations["prometheus.io/path"]).toBe("/metrics");
    expect((await fetch(`${tug.url}/metrics`)).status).toBe(200);
  });

  it("sets resources and a non-root, read-only container; gives shutdown time to drain", () => {
    expect(container["resources"].requests.cpu).toBeDefined();
    expect(container["resources"].requests.memory).toBeDefined();
    expect(container["resources"].limits.memory).toBeDefined();
    expect(deployment["spec"].template.spec.securityContext.runAsNonRoot).toBe(true);
    expect(container["securityContext"]).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    // main.ts closes remaining connections 25 s after SIGTERM; the pod must outlive that.
    expect(deployment["spec"].template.spec.terminationGracePeriodSeconds).toBeGreaterThan(25);
  });

  it("the Service, the PDB and Redis line up with the pods and the config", () => {
    const pods = deployment["spec"].template.metadata.labels;
    const svc = find(objs, "Service", "tug")["spec"];
    expect(matches(svc.selector, pods)).toBe(true);
    expect(svc.ports).toEqual([expect.objectContaining({ port: DEFAULT_PORT, targetPort: "http" })]);
    const pdb = find(objs, "PodDisruptionBudget", "tug")["spec"];
    expect(matches(pdb.selector.matchLabels, pods)).toBe(true);
    expect(pdb.minAvailable).toBeLessThan(deployment["spec"].replicas);
    const redis = new URL(config.redis.url);
    const redisSvc = find(objs, "Service", "tug-redis");
    expect(redis.hostname).toBe(redisSvc["metadata"].name);
    expect(Number(redis.port)).toBe(redisSvc["spec"].ports[0].port);
    const redisPods = find(objs, "Deployment", "tug-redis")["spec"].template.metadata.labels;
    expect(matches(redisSvc["spec"].selector, redisPods)).toBe(true);
  });
});

describe("deploy/kubernetes/node-mirror and deploy/node", () => {
  const script = join(DEPLOY, "kubernetes", "node-mirror", "install-containerd-mirror.sh");
  const REGISTRIES = ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io"];

  it("the DaemonSet runs the install script from its ConfigMap against the tug NodePort on the node's own IP", async () => {
    const objs = await kustomize("kubernetes/node-mirror");
    const ds = find(objs, "DaemonSet", "tug-node-mirror");
    const nodePort = find(objs, "Service", "tug-node");
    expect(nodePort["spec"].type).toBe("NodePort");
    expect(nodePort["spec"].selector).toEqual({ "app.kubernetes.io/name": "tug" });
    const port = nodePort["spec"].ports[0];
    expect(port.targetPort).toBe("http");
    const c = ds["spec"].template.spec.containers[0];
    const env = Object.fromEntries((c.env as Obj[]).map((e) => [e["name"], e]));
    expect(env["NODE_IP"]?.valueFrom.fieldRef.fieldPath).toBe("status.hostIP");
    expect(env["MIRROR_URL"]?.value).toBe(`http://$(NODE_IP):${port.nodePort}`);
    const cm = find(objs, "ConfigMap", "tug-node-mirror");
    expect(cm["data"]["install-containerd-mirror.sh"]).toBe(await readFile(script, "utf8"));
    const hostPath = ds["spec"].template.spec.volumes.find((v: Obj) => v["hostPath"])?.hostPath.path;
    expect(hostPath).toBe("/etc/containerd/certs.d");
    expect(ds["spec"].template.spec.tolerations).toEqual([{ operator: "Exists" }]);
  });

  it("the script writes exactly the hosts.toml files in deploy/node/containerd, one per registry, and refuses a URL without a scheme", async () => {
    const out = makeTempDir("certs");
    await run("sh", [script, "http://tug.internal:5000/", out]);
    expect((await readdir(out)).sort()).toEqual(REGISTRIES);
    for (const r of REGISTRIES) {
      const written = await readFile(join(out, r, "hosts.toml"), "utf8");
      expect(written, r).toBe(await readFile(join(DEPLOY, "node", "containerd", "certs.d", r, "hosts.toml"), "utf8"));
      expect(written).toContain('[host."http://tug.internal:5000"]');
    }
    await expect(run("sh", [script, "tug.internal:5000", out])).rejects.toMatchObject({ code: 2 });
  });

  it("daemon.json mirrors Docker Hub to tug on its default port, marked insecure (plain http)", async () => {
    const conf = JSON.parse(await readFile(join(DEPLOY, "node", "docker", "daemon.json"), "utf8")) as { "registry-mirrors": string[]; "insecure-registries": string[] };
    const mirror = new URL(conf["registry-mirrors"][0] ?? "");
    expect(mirror.protocol).toBe("http:");
    expect(Number(mirror.port)).toBe(DEFAULT_PORT);
    expect(conf["insecure-registries"]).toEqual([mirror.host]);
  });

  describe("real clients with the shipped files", () => {
    let registry: RunningRegistry;
    let images: StandardImages;
    let mirror: TestTug;

    beforeAll(async () => {
      registry = await startRegistry();
      images = await seedStandardImages(registry.directUrl);
      mirror = await startTug({ upstreams: { "docker.io": registry.url, "ghcr.io": registry.url } });
    }, 60_000);
    afterAll(async () => {
      await mirror?.stop();
      await registry?.stop();
    });

    it("containerd pulls docker.io and ghcr.io images through tug with the hosts.toml files the script installs", async () => {
      const hosts = makeTempDir("hosts");
      await run("sh", [script, mirror.url, hosts]);
      registry.resetRequests();
      const hub = await ctrPull("docker.io/library/alpine:3.20", { hostsDir: hosts });
      expect(hub.digest).toBe(images.alpine.digest);
      const gh = await ctrPull("ghcr.io/team/app:v1", { hostsDir: hosts });
      expect(gh.digest).toBe(images.app.digest);
      expect(registry.countRequests({ pathIncludes: "/manifests/" })).toBeGreaterThan(0); // reached through tug, the only way here
    });

    it("podman pulls docker.io through tug with deploy/node/podman/registries.conf", async () => {
      const text = (await readFile(join(DEPLOY, "node", "podman", "registries.conf"), "utf8")).replaceAll("tug.internal:5000", mirror.host);
      const dir = makeTempDir("registries");
      const conf = join(dir, "registries.conf");
      await writeFile(conf, text);
      const pulled = await podmanPull("docker.io/library/busybox:1.36", { registriesConf: conf });
      expect(pulled.digest).toBe(images.busybox.digest);
      await pulled.cleanup();
    });
  });
});

describe("deploy/docker-compose.yaml", () => {
  it("builds the Dockerfile, publishes tug's port, keeps the cache on a volume at the image's data dir, and wires Redis", async () => {
    const compose = parseYaml(await readFile(join(DEPLOY, "docker-compose.yaml"), "utf8")) as Obj;
    const svc = compose["services"].tug as Obj;
    const context = join(DEPLOY, svc["build"].context);
    expect(existsSync(join(context, svc["build"].dockerfile))).toBe(true);
    const dockerfile = await readDockerfile(join(context, svc["build"].dockerfile));
    const imageEnv = Object.assign({}, ...dockerfile.stages.at(-1)!.instructions.filter((i) => i.keyword === "ENV").map((i) => envPairs(i.rest))) as Record<string, string>;
    expect(svc["ports"]).toEqual([`${DEFAULT_PORT}:${parseListen(imageEnv["TUG_LISTEN"] ?? "").port}`]);
    const [volume, mountPath] = (svc["volumes"][0] as string).split(":");
    expect(mountPath).toBe(imageEnv["TUG_DATA_DIR"]);
    expect(Object.keys(compose["volumes"])).toContain(volume);
    const env = svc["environment"] as Record<string, string>;
    expect(unknownEnvOverrides(env)).toEqual([]);
    const config = parseConfig({ upstreams: { "docker.io": { url: "https://registry-1.docker.io", default: true } } }, { ...imageEnv, ...env });
    const redis = new URL(config.redis.url);
    expect(Object.keys(compose["services"])).toContain(redis.hostname);
    expect(svc["depends_on"][redis.hostname].condition).toBe("service_healthy");
    expect((svc["healthcheck"].test as string[]).join(" ")).toMatch(new RegExp(`127\\.0\\.0\\.1:${DEFAULT_PORT}/(healthz|readyz)`));
    expect(dirname(join(DEPLOY, "docker-compose.yaml"))).toBe(DEPLOY);
  });
});
