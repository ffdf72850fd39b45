// Limits against abusive clients on a running tug: oversized headers (431),
// headers sent too slowly (slowloris: the connection is closed after
// limits.clientHeadersTimeout), and a request body over the 4 MiB manifest cap
// refused at once without being read (413, connection closed).
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTug, type TestTug } from "../helpers/tug.js";

let tug: TestTug;
beforeAll(async () => {
  tug = await startTug({ upstreams: { "docker.io": "http://127.0.0.1:9" }, extra: { limits: { clientHeadersTimeout: "1s", clientRequestTimeout: "2s", maxHeaderSize: "8KiB" } } });
});
afterAll(async () => {
  await tug.stop();
});

function open(): Promise<{ socket: Socket; received: () => string; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(tug.port, "127.0.0.1");
    let text = "";
    const t0 = Date.now();
    const closed = new Promise<number>((r) => socket.once("close", () => r(Date.now() - t0)));
    socket.on("data", (c: Buffer) => (text += c.toString("latin1")));
    socket.on("error", () => undefined);
    socket.once("connect", () => resolve({ socket, received: () => text, closed }));
    socket.once("error", reject);
  });
}

describe("request limits", () => {
  it("refuses a header block over limits.maxHeaderSize with 431", async () => {
    const res = await fetch(`${tug.url}/v2/`, { headers: { "x-padding": "a".repeat(10 * 1024) } });
    expect(res.status).toBe(431);
  });

  it("closes a connection whose headers trickle in (slowloris) after clientHeadersTimeout", async () => {
    const { socket, closed } = await open();
    socket.write("GET /v2/ HTTP/1.1\r\nHost: tug\r\nX-Slow: ");
    // Keep sending a byte now and then, never finishing the headers.
    const drip = setInterval(() => socket.writable && socket.write("a"), 200);
    const ms = await closed;
    clearInterval(drip);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(10_000); // Node's default would be 30 s
  });

  it("refuses a manifest body over 4 MiB at once, without reading it, and closes the connection", async () => {
    const { socket, received, closed } = await open();
    socket.write(
      "PUT /v2/library/alpine/manifests/3.20 HTTP/1.1\r\nHost: tug\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 5242880\r\n\r\n",
    );
    socket.write(Buffer.alloc(64 * 1024, 0x20)); // a little of the body; the rest never comes
    await closed;
    const text = received();
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text.toLowerCase()).toContain("connection: close");
    expect(text).toContain("MANIFEST_INVALID");
  });

  it("any other request with a body is answered (405: pull-only) with Connection: close", async () => {
    const res = await fetch(`${tug.url}/v2/library/alpine/manifests/3.20`, { method: "PUT", body: "{}" });
    expect(res.status).toBe(405);
    expect(res.headers.get("connection")).toBe("close");
    await res.arrayBuffer();
  });

  it("a request with a body answered 200 straight from the Node response (GET /v2/) is also answered with Connection: close", async () => {
    const { socket, received, closed } = await open();
    socket.write("GET /v2/ HTTP/1.1\r\nHost: tug\r\nContent-Length: 2\r\n\r\n{}");
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (received().endsWith("\r\n\r\n{}")) resolve();
        else socket.once("data", check);
      };
      check();
    });
    const head = received().split("\r\n\r\n")[0]!.toLowerCase();
    expect(head).toMatch(/^http\/1\.1 200/);
    expect(head).toContain("connection: close");
    await closed;
  });
});
