import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/index.js";
import { RegistryError } from "../../src/oci/errors.js";
import { UpstreamTable, resolveRoute } from "../../src/upstream/routing.js";

const config = parseConfig(
  {
    dataDir: "/tmp/x",
    upstreams: {
      "docker.io": { url: "https://registry-1.docker.io", default: true },
      "ghcr.io": { url: "https://ghcr.io" },
      "localhost:5001": { url: "http://127.0.0.1:5001" },
    },
  },
  {},
);
const table = new UpstreamTable(config);

function err(f: () => unknown): RegistryError {
  try {
    f();
  } catch (e) {
    return e as RegistryError;
  }
  throw new Error("no error");
}

describe("routing", () => {
  it("ns selects the upstream (containerd)", () => {
    expect(resolveRoute("library/alpine", "docker.io", table)).toMatchObject({ upstream: { host: "docker.io" }, repository: "library/alpine" });
    expect(resolveRoute("owner/app", "ghcr.io", table)).toMatchObject({ upstream: { host: "ghcr.io" }, repository: "owner/app" });
  });
  it("a first segment naming an upstream selects it (podman path mirrors)", () => {
    expect(resolveRoute("ghcr.io/owner/app", undefined, table)).toMatchObject({ upstream: { host: "ghcr.io" }, repository: "owner/app" });
    expect(resolveRoute("docker.io/library/alpine", undefined, table)).toMatchObject({ upstream: { host: "docker.io" }, repository: "library/alpine" });
    expect(resolveRoute("localhost:5001/team/app", undefined, table)).toMatchObject({ upstream: { host: "localhost:5001" }, repository: "team/app" });
  });
  it("otherwise the default upstream (Docker registry-mirrors), with library/ for one-segment Hub names", () => {
    expect(resolveRoute("alpine", undefined, table)).toMatchObject({ upstream: { host: "docker.io" }, repository: "library/alpine" });
    expect(resolveRoute("docker.io/alpine", undefined, table).repository).toBe("library/alpine");
    expect(resolveRoute("bitnami/redis", undefined, table).repository).toBe("bitnami/redis");
    expect(resolveRoute("app", "ghcr.io", table).repository).toBe("app");
  });
  it("Docker Hub's other names are aliases of docker.io", () => {
    expect(resolveRoute("x/y", "registry-1.docker.io", table).upstream.host).toBe("docker.io");
    expect(resolveRoute("x/y", "index.docker.io", table).upstream.host).toBe("docker.io");
  });
  it("an unknown ns or prefix is NAME_UNKNOWN, never an address", () => {
    for (const ns of ["127.0.0.1:6379", "169.254.169.254", "evil.example.com", "quay.io"]) {
      expect(err(() => resolveRoute("library/alpine", ns, table))).toMatchObject({ code: "NAME_UNKNOWN", status: 404 });
    }
    expect(err(() => resolveRoute("quay.io/x/y", undefined, table))).toMatchObject({ code: "NAME_UNKNOWN" });
    expect(err(() => resolveRoute("127.0.0.1:6379/x", undefined, table))).toMatchObject({ code: "NAME_UNKNOWN" });
  });
  it("invalid names are NAME_INVALID", () => {
    for (const n of ["Library/alpine", "a//b", "ghcr.io/Bad", "a/../b"]) {
      expect(err(() => resolveRoute(n, undefined, table))).toMatchObject({ code: "NAME_INVALID", status: 400 });
    }
  });
  it("with no default upstream, a bare name is NAME_UNKNOWN", () => {
    const noDefault = new UpstreamTable(parseConfig({ dataDir: "/tmp/x", upstreams: { "ghcr.io": { url: "https://ghcr.io" } } }, {}));
    expect(err(() => resolveRoute("a/b", undefined, noDefault))).toMatchObject({ code: "NAME_UNKNOWN" });
  });
});
