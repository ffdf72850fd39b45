// Who is asking, read once from the request: the client's Bearer token (for
// clientAuth upstreams) and the address of tug's token endpoint as this
// client reaches tug, which tug's challenges name as their realm.
import type { Requester } from "../auth/client-access.js";
import { TOKEN_PATH } from "../auth/token-relay.js";

const HOST_RE = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/;

function firstValue(v: string | null): string | undefined {
  const first = v?.split(",")[0]?.trim();
  return first === "" ? undefined : first;
}

/** The client's `Authorization: Bearer <token>`, if that is what it sent. */
export function bearerToken(headers: Headers): string | undefined {
  const m = /^Bearer\s+([^\s,]+)\s*$/i.exec(headers.get("authorization") ?? "");
  return m?.[1];
}

/**
 * tug's token endpoint as the client reaches it: scheme and host of the
 * request (X-Forwarded-Proto/-Host when a proxy in front of tug sets them),
 * plus ?ns= when the request routed by ns (containerd), so that the token
 * request's bare repository names route the same way.
 */
export function tokenRealm(headers: Headers, url: URL): string {
  const proto = firstValue(headers.get("x-forwarded-proto"));
  const fwdHost = firstValue(headers.get("x-forwarded-host"));
  const host = fwdHost !== undefined && HOST_RE.test(fwdHost) ? fwdHost : url.host;
  const scheme = proto === "https" || proto === "http" ? proto : url.protocol.replace(/:$/, "");
  const realm = new URL(`${scheme}://${host}${TOKEN_PATH}`);
  const ns = url.searchParams.get("ns");
  if (ns) realm.searchParams.set("ns", ns);
  return realm.href;
}

export function requesterOf(headers: Headers, url: URL, clientName: string): Requester {
  let realm: string | undefined;
  return {
    token: bearerToken(headers),
    clientName,
    // Only a challenge needs it: not built on the hot path of a cache hit.
    get realm(): string {
      realm ??= tokenRealm(headers, url);
      return realm;
    },
  };
}
