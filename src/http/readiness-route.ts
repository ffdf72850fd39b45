// GET /readyz: 200 when tug can serve (config loaded, data dir writable, not
// shutting down), 503 otherwise; the body also shows each component's state
// (Redis, upstreams, disk), which never fails readiness by itself.
import type { Hono } from "hono";
import type { Readiness } from "../observability/readiness.js";

export function registerReadinessRoute(app: Hono, readiness: Readiness | undefined): void {
  app.get("/readyz", async (c) => {
    if (!readiness) {
      return c.json({ status: "not ready", checks: { config: { ok: false, error: "no configuration loaded" } }, components: {} }, 503);
    }
    const report = await readiness.check();
    return c.json(report, report.status === "ready" ? 200 : 503, { "Cache-Control": "no-store" });
  });
}
