// tug's token endpoint (GET, and POST for OAuth2 clients) at /auth/token: the
// realm of the challenges tug sends for clientAuth upstreams. The work is in
// auth/token-relay.ts; this only reads the request and writes the answer.
import type { Hono } from "hono";
import { RegistryError } from "../oci/errors.js";
import { TOKEN_PATH, type TokenRelay } from "../auth/token-relay.js";
import { sendBytes } from "./send.js";

/** An OAuth2 form is a few fields; anything larger is not one. */
const MAX_FORM_BYTES = 64 * 1024;

export function registerTokenRoute(app: Hono, relay: TokenRelay): void {
  app.on(["GET", "POST"], TOKEN_PATH, async (c) => {
    const url = new URL(c.req.url);
    let form: URLSearchParams | undefined;
    if (c.req.method === "POST") {
      const length = Number(c.req.header("content-length") ?? "0");
      if (length > MAX_FORM_BYTES) throw new RegistryError("SIZE_INVALID", "token request too large");
      const text = await c.req.text();
      if (text.length > MAX_FORM_BYTES) throw new RegistryError("SIZE_INVALID", "token request too large");
      form = new URLSearchParams(text);
    }
    const answer = await relay.handle({
      method: c.req.method === "POST" ? "POST" : "GET",
      query: url.searchParams,
      authorization: c.req.header("authorization"),
      ...(form !== undefined ? { form } : {}),
    });
    c.get("notes").endpoint = "token";
    // Tokens are credentials: no cache may keep them.
    return sendBytes(c, answer.status, { "Content-Type": answer.contentType, "Cache-Control": "no-store" }, answer.body);
  });
}
