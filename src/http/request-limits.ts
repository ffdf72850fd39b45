// Limits on what clients send. tug is pull-only and never reads a request
// body, so a body is refused before it is read: one larger than the manifest
// cap (4 MiB, CVE-2017-11468) gets 413 at once, and any request that carries a
// body is answered with Connection: close, so the server does not drain an
// unbounded upload to keep the connection alive. Header size and header /
// request timeouts (slowloris) are set on the server itself (main.ts).
import type { MiddlewareHandler } from "hono";
import type { ServerResponse } from "node:http";
import { RegistryError } from "../oci/errors.js";
import { MAX_MANIFEST_BYTES } from "../oci/media-types.js";

export function requestLimits(opts: { maxBodyBytes?: number } = {}): MiddlewareHandler {
  const max = opts.maxBodyBytes ?? MAX_MANIFEST_BYTES;
  return async function limits(c, next) {
    const length = c.req.header("content-length");
    const chunked = c.req.header("transfer-encoding") !== undefined;
    const hasBody = chunked || (length !== undefined && length !== "0");
    if (!hasBody) return next();
    if (length !== undefined && (!/^\d+$/.test(length) || Number(length) > max)) {
      const manifest = c.req.path.includes("/manifests/");
      throw new RegistryError(manifest ? "MANIFEST_INVALID" : "SIZE_INVALID", `request body exceeds ${max} bytes`, {
        status: 413,
        detail: { limit: max },
        headers: { Connection: "close" },
      });
    }
    // A response written straight to the Node response (http/send.ts) takes
    // its headers from there; a Response from c.res.
    (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing?.setHeader("Connection", "close");
    await next();
    c.res.headers.set("Connection", "close");
  };
}
