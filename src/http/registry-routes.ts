// The /v2 API: parse the request into typed values (400/404 before any I/O),
// call the pull-through service, translate its answer into headers and bytes.
import type { Hono } from "hono";
import type { PullThrough, CacheStatus } from "../cache/pull-through.js";
import { parseDigest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { parseReference } from "../oci/reference.js";
import { resolveRoute, type UpstreamTable } from "../upstream/routing.js";
import { parseRegistryPath } from "./parse-path.js";
import { sendBytes, sendStream } from "./send.js";
import type { ClientAccess } from "../auth/client-access.js";
import { bearerToken, requesterOf, tokenRealm } from "./requester.js";
import { serveTags } from "./tags-route.js";
import { serveReferrers } from "./referrers-route.js";

export interface RegistryRoutesDeps {
  readonly pullThrough: PullThrough;
  readonly upstreams: UpstreamTable;
  /** Who may have what: private content, clientAuth challenges, tags/list, referrers (auth/client-access.ts). */
  readonly access: ClientAccess;
}

const CACHE_HEADER = "X-Cache";

function cacheHeaders(cache: CacheStatus): Record<string, string> {
  return { [CACHE_HEADER]: cache };
}

export function registerRegistryRoutes(app: Hono, deps: RegistryRoutesDeps): void {
  app.all("/v2/*", async (c) => {
    const url = new URL(c.req.url);
    const method = c.req.method;
    // Names, tags and digests never contain "%": an encoded path is a trick, not a name.
    if (url.pathname.includes("%")) throw new RegistryError("NAME_INVALID", "invalid repository name");
    const path = parseRegistryPath(url.pathname);
    if (path.kind === "base") {
      if (method !== "GET" && method !== "HEAD") throw unsupported(method);
      await deps.access.base(url.searchParams.get("ns") ?? undefined, { token: bearerToken(c.req.raw.headers), realm: tokenRealm(c.req.raw.headers, url) });
      return sendBytes(c, 200, { "Content-Type": "application/json", "Content-Length": "2" }, method === "HEAD" ? undefined : Buffer.from("{}"));
    }
    if (path.kind === "other") {
      // Uploads and other write endpoints: a pull-through cache accepts no pushes.
      if (method !== "GET" && method !== "HEAD" || url.pathname.includes("/blobs/uploads")) throw unsupported(method);
      throw new RegistryError("NAME_UNKNOWN", "no such endpoint", { status: 404 });
    }
    const route = resolveRoute(path.name, url.searchParams.get("ns") ?? undefined, deps.upstreams);
    const notes = c.get("notes");
    notes.upstream = route.upstream.host;
    const requester = requesterOf(c.req.raw.headers, url, path.name);

    if (path.kind === "manifest") {
      const ref = parseReference(path.reference);
      if (method !== "GET" && method !== "HEAD") throw unsupported(method);
      const { manifest, cache } = await deps.access.manifest(route, ref, requester);
      notes.cache = cache;
      notes.bytes = manifest.bytes.length;
      notes.source = cache === "MISS" ? "upstream" : "cache";
      return sendBytes(
        c,
        200,
        {
          "Content-Type": manifest.mediaType,
          "Content-Length": String(manifest.bytes.length),
          "Docker-Content-Digest": manifest.digest,
          ETag: `"${manifest.digest}"`,
          ...cacheHeaders(cache),
        },
        method === "HEAD" ? undefined : manifest.bytes,
      );
    }

    if (path.kind === "blob") {
      const digest = parseDigest(path.digest);
      if (method !== "GET" && method !== "HEAD") throw unsupported(method);
      const r = await deps.access.blob(route, digest, method, c.req.header("range"), requester);
      const headers: Record<string, string> = {
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": r.digest.value,
        "Accept-Ranges": "bytes",
        ETag: `"${r.digest.value}"`,
        ...cacheHeaders(r.cache),
      };
      if (r.range && r.size !== undefined) {
        headers["Content-Range"] = `bytes ${r.range.start}-${r.range.end}/${r.size}`;
        headers["Content-Length"] = String(r.range.end - r.range.start + 1);
      } else if (r.size !== undefined) {
        headers["Content-Length"] = String(r.size);
      }
      notes.cache = r.cache;
      notes.source = r.cache === "MISS" ? "upstream" : "cache";
      if (headers["Content-Length"] !== undefined) notes.bytes = Number(headers["Content-Length"]);
      return sendStream(c, r.status, headers, r.body);
    }

    if (method !== "GET" && method !== "HEAD") throw unsupported(method);
    if (path.kind === "tags") return serveTags(c, deps.access, route, requester, url);
    return serveReferrers(c, deps.access, route, requester, path.digest, url);
  });
}

function unsupported(method: string): RegistryError {
  return new RegistryError("UNSUPPORTED", `${method} is not supported by a pull-through cache`, { detail: { method } });
}
