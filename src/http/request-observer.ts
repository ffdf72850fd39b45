// One middleware that watches every request to its real end (the socket's
// close, so streamed blobs count whole): a metrics sample and one log line
// (method, path without the query, status, bytes, ms, cache outcome, upstream,
// request id). Probes and scrapes (/healthz, /readyz, /metrics) log at debug so
// a kubelet probing every few seconds does not drown the access log.
import type { MiddlewareHandler } from "hono";
import type { ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Metrics } from "../observability/metrics.js";
import { accessLoggerOf } from "../observability/logger.js";

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

/** A client's X-Request-Id is kept only when it is short and plain (it goes into logs and a response header). */
const REQUEST_ID_RE = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

export function requestIdOf(header: string | undefined): string {
  return header !== undefined && REQUEST_ID_RE.test(header) ? header : randomUUID();
}

export function endpointOf(path: string): string {
  if (path === "/v2/" || path === "/v2") return "base";
  if (path === "/metrics") return "metrics";
  if (path === "/healthz" || path === "/readyz") return "health";
  if (!path.startsWith("/v2/")) return "other";
  if (path.includes("/manifests/")) return "manifest";
  if (path.includes("/blobs/")) return "blob";
  if (path.endsWith("/tags/list")) return "tags";
  if (path.includes("/referrers/")) return "referrers";
  return "other";
}

export function requestObserver(opts: { metrics: Metrics; logger: Logger; accessLog: boolean }): MiddlewareHandler {
  const { metrics, accessLog } = opts;
  // Buffered and without redaction (observability/logger.ts).
  const logger = accessLoggerOf(opts.logger);
  return async function observeRequest(c, next) {
    const started = process.hrtime.bigint();
    const path = c.req.path;
    const notes: RequestNotes = { endpoint: endpointOf(path) };
    const requestId = requestIdOf(c.req.header("x-request-id"));
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
        const level = notes.endpoint === "health" || notes.endpoint === "metrics" ? "debug" : "info";
        logger[level](
          { req: { id: requestId, method, path }, status, bytes: sent, ms: Math.round(seconds * 1e4) / 10, cache: notes.cache, upstream: notes.upstream, complete },
          "request",
        );
      }
    };
    if (outgoing) {
      // Set on the Node response itself: writeHead merges it into every answer, streamed bodies too.
      outgoing.setHeader("X-Request-Id", requestId);
      outgoing.once("close", () => record(outgoing.statusCode, outgoing.writableFinished));
      await next();
      return;
    }
    await next();
    c.header("X-Request-Id", requestId);
    record(c.res.status, true);
  };
}
