// createApp(deps): the Hono app. No I/O happens at import; tests drive it with app.request().
import { Hono } from "hono";
import type { Logger } from "pino";
import type { PullThrough } from "./cache/pull-through.js";
import { RegistryError } from "./oci/errors.js";
import { errorResponse, API_VERSION_HEADER } from "./http/send.js";
import { registerRegistryRoutes } from "./http/registry-routes.js";
import type { UpstreamTable } from "./upstream/routing.js";
import type { Metrics } from "./observability/metrics.js";
import { requestObserver } from "./http/request-observer.js";
import { requestLimits } from "./http/request-limits.js";
import { registerReadinessRoute } from "./http/readiness-route.js";
import type { Readiness } from "./observability/readiness.js";
import type { ClientAccess } from "./auth/client-access.js";
import type { TokenRelay } from "./auth/token-relay.js";
import type { BasicUsers } from "./auth/basic-users.js";
import { registerTokenRoute } from "./http/token-route.js";
import { clientLogin } from "./http/client-login.js";

export interface AppDeps {
  readonly pullThrough: PullThrough;
  readonly upstreams: UpstreamTable;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** One log line per request (default true). */
  readonly accessLog?: boolean;
  /** /readyz: core checks plus the status providers other parts register (readiness.providers). */
  readonly readiness?: Readiness;
  /** Private content and clientAuth challenges (auth/client-access.ts). */
  readonly access: ClientAccess;
  /** tug's token endpoint for clientAuth upstreams. */
  readonly tokenRelay: TokenRelay;
  /** auth.users: when enabled, every request but the probes needs a login. */
  readonly users: BasicUsers;
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();

  app.use(requestObserver({ metrics: deps.metrics, logger: deps.logger, accessLog: deps.accessLog ?? true }));
  app.use(requestLimits());
  app.use(clientLogin(deps.users));

  app.get("/metrics", async (c) => {
    const body = await deps.metrics.registry.metrics();
    return c.body(body, 200, { "Content-Type": deps.metrics.registry.contentType });
  });

  app.get("/healthz", (c) => c.json({ status: "ok" }, 200, API_VERSION_HEADER));
  registerReadinessRoute(app, deps.readiness);

  registerTokenRoute(app, deps.tokenRelay);
  registerRegistryRoutes(app, deps);

  app.notFound((c) => errorResponse(new RegistryError("NAME_UNKNOWN", "no such endpoint"), c.req.method));

  app.onError((err, c) => {
    if (err instanceof RegistryError) {
      if (err.status >= 500) deps.logger.warn({ code: err.code, status: err.status, path: c.req.path, reason: err.message }, "request failed");
      return errorResponse(err, c.req.method);
    }
    deps.logger.error({ err, path: c.req.path }, "unexpected error");
    return errorResponse(new RegistryError("UNKNOWN", "internal error"), c.req.method);
  });

  return app;
}
