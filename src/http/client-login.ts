// auth.users: when users are configured, every request but the health probes
// needs the Basic credentials of one of them (401 with
// `WWW-Authenticate: Basic realm="tug"` otherwise), for a cache exposed beyond
// a trusted network.
import type { MiddlewareHandler } from "hono";
import type { BasicUsers } from "../auth/basic-users.js";
import { RegistryError } from "../oci/errors.js";
import { errorResponse } from "./send.js";

/** Probes must answer without credentials (kubelet, load balancers); they show no cached content. */
const OPEN_PATHS = new Set(["/healthz", "/readyz", "/livez"]);

export function clientLogin(users: BasicUsers): MiddlewareHandler {
  return async function requireLogin(c, next) {
    if (!users.enabled || OPEN_PATHS.has(c.req.path)) return next();
    const user = await users.verify(c.req.header("authorization"));
    if (user === undefined) {
      return errorResponse(
        new RegistryError("UNAUTHORIZED", "authentication required", { headers: { "WWW-Authenticate": 'Basic realm="tug"' } }),
        c.req.method,
      );
    }
    return next();
  };
}
