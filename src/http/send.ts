// Turning results into responses. Streamed bodies go straight from the Node
// stream to the socket when tug runs under @hono/node-server (no Web-stream
// conversion on the hot path); under app.request() (tests) they become a Response.
import { Readable } from "node:stream";
import type { Context } from "hono";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { ServerResponse } from "node:http";
import { RegistryError } from "../oci/errors.js";
import { isDirectBody } from "../cache/file-range-stream.js";
import { recycleFileChunk } from "../cache/buffer-pool.js";

export const API_VERSION_HEADER = { "Docker-Distribution-API-Version": "registry/2.0" } as const;

interface NodeBindings {
  outgoing?: ServerResponse;
}

export function sendStream(c: Context, status: number, headers: Record<string, string>, body: Readable | undefined): Response {
  const outgoing = (c.env as NodeBindings | undefined)?.outgoing;
  const all: Record<string, string> = { ...API_VERSION_HEADER, ...headers };
  if (outgoing && body) {
    outgoing.writeHead(status, all);
    if (isDirectBody(body)) {
      body.sendTo(outgoing);
      return RESPONSE_ALREADY_SENT;
    }
    pipeRecycling(body, outgoing);
    return RESPONSE_ALREADY_SENT;
  }
  if (!body) return new Response(null, { status, headers: all });
  return new Response(Readable.toWeb(body) as ReadableStream<Uint8Array>, { status, headers: all });
}

/**
 * body → res like stream.pipeline, except that each chunk from a file pool
 * (a FillReader following a fill) goes back to its pool once the socket has
 * written it. On an error or a premature end of either side both are
 * destroyed: the client sees a cut connection, never a clean end.
 */
function pipeRecycling(body: Readable, res: ServerResponse): void {
  const onData = (chunk: Buffer): void => {
    if (!res.write(chunk, () => recycleFileChunk(chunk))) body.pause();
  };
  const onDrain = (): void => {
    body.resume();
  };
  const onEnd = (): void => {
    res.end();
  };
  const onBodyClose = (): void => {
    if (!body.readableEnded) res.destroy(body.errored ?? new Error("response body closed before its end"));
  };
  const onResClose = (): void => {
    body.off("data", onData);
    res.off("drain", onDrain);
    if (!body.destroyed) body.destroy();
  };
  body.on("data", onData);
  body.once("end", onEnd);
  // An error is followed by close (autoDestroy); close handles both.
  body.on("error", () => undefined);
  body.once("close", onBodyClose);
  res.on("drain", onDrain);
  res.once("close", onResClose);
}

/**
 * A small body (a manifest, a tag list, a token): written with the Node
 * response itself under @hono/node-server, one writeHead and one end, where a
 * Response object, its Headers and hono's conversion back to Node cost more
 * than the rest of a cached manifest request (bench profile, issue 7).
 */
export function sendBytes(c: Context, status: number, headers: Record<string, string>, body: Uint8Array | undefined): Response {
  const outgoing = (c.env as NodeBindings | undefined)?.outgoing;
  // Not for HEAD: hono answers HEAD by wrapping the GET route's Response.
  if (outgoing && body !== undefined && c.req.method !== "HEAD") {
    outgoing.writeHead(status, { ...API_VERSION_HEADER, ...headers });
    outgoing.end(body);
    return RESPONSE_ALREADY_SENT;
  }
  return new Response((body ?? null) as BodyInit | null, { status, headers: { ...API_VERSION_HEADER, ...headers } });
}

export function errorResponse(err: RegistryError, method: string): Response {
  const headers: Record<string, string> = { ...API_VERSION_HEADER, "Content-Type": "application/json", ...err.headers };
  const body = JSON.stringify(err.toJSON());
  return new Response(method === "HEAD" ? null : body, { status: err.status, headers });
}
