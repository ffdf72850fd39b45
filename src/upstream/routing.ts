// Which upstream a request is for: ?ns=<host> (containerd), a first path
// segment naming a configured upstream (podman / CRI-O path mirrors), else the
// default upstream (Docker's registry-mirrors). Hosts are lookup keys into the
// configuration, never addresses to dial (PROTOCOL.md lesson 16).
import type { Config, UpstreamConfig } from "../config/index.js";
import { RegistryError } from "../oci/errors.js";
import { isValidName } from "../oci/reference.js";

export interface Route {
  readonly upstream: UpstreamConfig;
  /** The repository name on the upstream (e.g. "library/alpine"). */
  readonly repository: string;
  /**
   * A client's own upstream token (clientAuth): set only by the client-access
   * gate once it has decided that this request goes upstream as that client,
   * never as tug. Absent: tug's own identity.
   */
  readonly clientToken?: string;
}

/** Lookup table from every name an upstream answers to (its key, its URL host). */
export class UpstreamTable {
  readonly #byName = new Map<string, UpstreamConfig>();
  readonly default: UpstreamConfig | undefined;

  constructor(config: Pick<Config, "upstreams" | "defaultUpstream">) {
    for (const u of Object.values(config.upstreams)) {
      this.#byName.set(u.host.toLowerCase(), u);
    }
    for (const u of Object.values(config.upstreams)) {
      const urlHost = new URL(u.url).host.toLowerCase();
      if (!this.#byName.has(urlHost)) this.#byName.set(urlHost, u);
    }
    // containerd and Docker name Docker Hub in several ways.
    const hub = this.#byName.get("docker.io");
    if (hub) {
      for (const alias of ["registry-1.docker.io", "index.docker.io", "registry.hub.docker.com"]) {
        if (!this.#byName.has(alias)) this.#byName.set(alias, hub);
      }
    }
    this.default = config.defaultUpstream ? config.upstreams[config.defaultUpstream] : undefined;
  }

  lookup(host: string): UpstreamConfig | undefined {
    return this.#byName.get(host.toLowerCase());
  }

  all(): UpstreamConfig[] {
    return [...new Set(this.#byName.values())];
  }
}

function nameUnknown(message: string, detail: unknown): RegistryError {
  return new RegistryError("NAME_UNKNOWN", message, { detail });
}

/**
 * Resolves the raw name from the path (everything between /v2/ and
 * /manifests|blobs|tags|referrers) plus the ns query value into a Route.
 */
export function resolveRoute(rawName: string, ns: string | undefined, table: UpstreamTable): Route {
  let upstream: UpstreamConfig | undefined;
  let name = rawName;
  if (ns !== undefined && ns !== "") {
    upstream = table.lookup(ns);
    if (!upstream) throw nameUnknown("the ns parameter names no configured upstream", { ns: ns.slice(0, 255) });
  } else {
    const slash = rawName.indexOf("/");
    const first = slash > 0 ? rawName.slice(0, slash) : "";
    // A first segment that looks like a host (has a dot or a port, or is
    // localhost) is a registry prefix, as in podman's "tug:5000/ghcr.io".
    if (first && (first.includes(".") || first.includes(":") || first === "localhost")) {
      upstream = table.lookup(first);
      if (!upstream) throw nameUnknown("the name's first segment names no configured upstream", { registry: first.slice(0, 255) });
      name = rawName.slice(slash + 1);
    } else {
      upstream = table.default;
      if (!upstream) throw nameUnknown("no default upstream is configured; use ?ns= or a registry prefix", { name: rawName.slice(0, 255) });
    }
  }
  if (!isValidName(name) || name.length + upstream.host.length + 1 > 255) {
    throw new RegistryError("NAME_INVALID", "invalid repository name", { detail: { name: name.slice(0, 255) } });
  }
  if (upstream.dockerHub && !name.includes("/")) name = `library/${name}`;
  return { upstream, repository: name };
}
