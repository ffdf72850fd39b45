// One middleware that watches every request to its real end (the socket's
// close, so streamed blobs count whole): a metrics sample and one log line.
import type { MiddlewareHandler } from "hono";
import type { ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";

/** What a handler tells the observer about its request. */
export interface RequestNotes {
  endpoint: string;
  cache?: string;
  upstream?: string;
  /** Body bytes the handler intends to send (for a streamed body: its length). */
  bytes?: number;
  /** Where the body bytes come from: "cache" or "upstream". */
  source?: "cache" | "upstream";
}

declare module "hono" {
  interface ContextVariableMap {
    notes: RequestNotes;
    requestId: string;
  }
}

export function endpointOf(path: string): string {
  if (path === "/v2/" || path === "/v2") return "base";
  if (!path.startsWith("/v2/")) return "other";
  if (path.includes("/manifests/")) return "manifest";
  if (path.includes("/blobs/")) return "blob";
  if (path.endsWith("/tags/list")) return "tags";
  if (path.includes("/referrers/")) return "referrers";
  return "other";
}

export function requestObserver(opts: { metrics: Metrics; logger: Logger; accessLog: boolean }): MiddlewareHandler {
  const { metrics, logger, accessLog } = opts;
  return async function observeRequest(c, next) {
    const started = process.hrtime.bigint();
    const path = c.req.path;
    const notes: RequestNotes = { endpoint: endpointOf(path) };
    const requestId = c.req.header("x-request-id") ?? randomUUID();
    c.set("notes", notes);
    c.set("requestId", requestId);
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    const method = c.req.method;
    const record = (status: number, complete: boolean): void => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.httpRequests.inc({ endpoint: notes.endpoint, method, status: String(status) });
      metrics.httpDuration.observe({ endpoint: notes.endpoint }, seconds);
      const sent = complete && method === "GET" && notes.bytes !== undefined ? notes.bytes : 0;
      if (sent > 0 && notes.source) metrics.servedBytes.inc({ kind: notes.endpoint, source: notes.source }, sent);
      if (accessLog) {
        logger.info(
          { req: { id: requestId, method, path }, status, bytes: sent, ms: Math.round(seconds * 1e4) / 10, cache: notes.cache, upstream: notes.upstream, complete },
          "request",
        );
      }
    };
    if (outgoing) {
      outgoing.once("close", () => record(outgoing.statusCode, outgoing.writableFinished));
      await next();
      return;
    }
    await next();
    record(c.res.status, true);
  };
}
