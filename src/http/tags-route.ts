// GET /v2/<name>/tags/list: tug paginates the upstream's whole list itself
// (sorted lexically; `n` clamped, CVE-2023-2253; `last` exclusive; tug's own
// Link to the next page, naming the repository as the client did), so
// pagination works even where the upstream ignores `n` (distribution 2.8).
import type { Context } from "hono";
import type { ClientAccess, Requester } from "../auth/client-access.js";
import { compareTags } from "../cache/tag-lists.js";
import { RegistryError } from "../oci/errors.js";
import type { Route } from "../upstream/routing.js";
import { sendBytes } from "./send.js";

/** The most tags one response carries when the client asks for more. */
export const MAX_TAGS_PER_PAGE = 1000;

export interface TagPage {
  readonly tags: string[];
  /** Set when more tags follow: the n and last of the next page. */
  readonly next?: { readonly n: number; readonly last: string };
}

/** One page of a sorted list. n absent = everything after last; n=0 = nothing, no next page. */
export function paginateTags(all: readonly string[], nRaw: string | null, last: string | null): TagPage {
  let n: number | undefined;
  if (nRaw !== null && nRaw !== "") {
    if (!/^\d+$/.test(nRaw)) throw new RegistryError("UNSUPPORTED", "n must be a non-negative integer", { status: 400, detail: { n: nRaw.slice(0, 32) } });
    n = Math.min(Number(nRaw), MAX_TAGS_PER_PAGE);
  }
  let start = 0;
  if (last !== null && last !== "") {
    // First index whose tag sorts after last (binary search: the list is sorted).
    let lo = 0;
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareTags(all[mid]!, last) <= 0) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  if (n === 0) return { tags: [] };
  const end = n === undefined ? all.length : Math.min(all.length, start + n);
  const tags = all.slice(start, end);
  if (n !== undefined && end < all.length && tags.length > 0) return { tags, next: { n, last: tags[tags.length - 1]! } };
  return { tags };
}

export async function serveTags(c: Context, access: ClientAccess, route: Route, q: Requester, url: URL): Promise<Response> {
  const method = c.req.method;
  const { tags: all, cache } = await access.tags(route, q);
  const page = paginateTags(all, url.searchParams.get("n"), url.searchParams.get("last"));
  const body = Buffer.from(JSON.stringify({ name: q.clientName, tags: page.tags }));
  const headers: Record<string, string> = { "Content-Type": "application/json", "Content-Length": String(body.length), "X-Cache": cache };
  if (page.next) {
    const next = new URLSearchParams({ n: String(page.next.n), last: page.next.last });
    const ns = url.searchParams.get("ns");
    if (ns) next.set("ns", ns);
    headers["Link"] = `</v2/${q.clientName}/tags/list?${next.toString()}>; rel="next"`;
  }
  const notes = c.get("notes");
  notes.cache = cache;
  notes.bytes = body.length;
  notes.source = cache === "MISS" ? "upstream" : "cache";
  return sendBytes(c, 200, headers, method === "HEAD" ? undefined : body);
}
