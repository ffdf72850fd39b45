// Small in-memory fixtures for fault-server tests: a manifest and its blobs.
import { createHash, randomBytes } from "node:crypto";

export function sha256(b: Buffer | string): string {
  return "sha256:" + createHash("sha256").update(b).digest("hex");
}

export interface Fixture {
  readonly blob: Buffer;
  readonly blobDigest: string;
  readonly manifest: Buffer;
  readonly manifestDigest: string;
  readonly mediaType: string;
}

export function makeFixture(blobSize = 256 * 1024): Fixture {
  const blob = randomBytes(blobSize);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
  const mediaType = "application/vnd.oci.image.manifest.v1+json";
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(blob), size: blob.length }],
    }),
  );
  return { blob, blobDigest: sha256(blob), manifest, manifestDigest: sha256(manifest), mediaType };
}

/** Reads a whole fetch Response body, or returns the error that cut it. */
export async function readBody(res: Response): Promise<{ bytes: Buffer; error?: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of res.body as unknown as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(c));
    return { bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error };
  }
}
