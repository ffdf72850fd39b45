// GET /v2/<name>/referrers/<digest>: passed through to the upstream, never
// cached; an upstream without the API answers its own 404, which the client
// gets as is (clients then fall back to the referrers tag schema).
import type { Context } from "hono";
import type { ClientAccess, Requester } from "../auth/client-access.js";
import { parseDigest } from "../oci/digest.js";
import { drain, headerValue, readLimited, upstreamStatusError } from "../upstream/registry-client.js";
import type { Route } from "../upstream/routing.js";
import { sendBytes } from "./send.js";

/** A referrers index is a manifest: the same cap (CVE-2017-11468). */
const MAX_REFERRERS_BYTES = 4 * 1024 * 1024;

export async function serveReferrers(c: Context, access: ClientAccess, route: Route, q: Requester, rawDigest: string, url: URL): Promise<Response> {
  const digest = parseDigest(rawDigest);
  const artifactType = url.searchParams.get("artifactType");
  const query = artifactType !== null ? `?${new URLSearchParams({ artifactType }).toString()}` : "";
  const res = await access.referrers(route, digest, query, q);
  if (res.status >= 500 || res.status === 429 || res.status === 401 || res.status === 403) {
    await drain(res.body);
    throw upstreamStatusError(res, route.upstream.host, "referrers");
  }
  const body = await readLimited(res.body, MAX_REFERRERS_BYTES);
  const headers: Record<string, string> = { "Content-Length": String(body.length) };
  const ct = headerValue(res.headers["content-type"]);
  if (ct !== undefined) headers["Content-Type"] = ct;
  const filters = headerValue(res.headers["oci-filters-applied"]);
  if (filters !== undefined) headers["OCI-Filters-Applied"] = filters;
  const link = nextLink(headerValue(res.headers["link"]), route, q.clientName, url.searchParams.get("ns"));
  if (link !== undefined) headers["Link"] = link;
  const notes = c.get("notes");
  notes.bytes = body.length;
  notes.source = "upstream";
  return sendBytes(c, res.status, headers, c.req.method === "HEAD" ? undefined : body);
}

/** The upstream's next-page Link, pointed back at tug under the client's name; anything else is dropped. */
function nextLink(link: string | undefined, route: Route, clientName: string, ns: string | null): string | undefined {
  const m = link !== undefined ? /<([^>]*)>\s*;[^,]*rel="?next"?/i.exec(link) : null;
  if (!m) return undefined;
  const origin = new URL(route.upstream.url);
  let target: URL;
  try {
    target = new URL(m[1]!, origin);
  } catch {
    return undefined;
  }
  const prefix = `/v2/${route.repository}/referrers/`;
  if (target.origin !== origin.origin || !target.pathname.startsWith(prefix)) return undefined;
  const rest = target.pathname.slice(prefix.length);
  if (!/^[a-z0-9]+:[a-f0-9]+$/.test(rest)) return undefined;
  const params = new URLSearchParams(target.search);
  if (ns) params.set("ns", ns);
  const search = params.toString();
  return `</v2/${clientName}/referrers/${rest}${search ? `?${search}` : ""}>; rel="next"`;
}
