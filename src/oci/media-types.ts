// Manifest media types and the Accept list tug always sends upstream
// (PROTOCOL.md lesson 11: a narrow Accept got a different manifest and digest).

export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws";

export const MANIFEST_ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ");

/** The cap on a manifest body (CVE-2017-11468: an unbounded manifest read exhausted memory). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The media type to serve: the upstream's Content-Type, else the manifest's own mediaType field. */
export function manifestMediaType(contentType: string | undefined, bytes: Uint8Array): string {
  const ct = contentType?.split(";")[0]?.trim();
  if (ct && ct !== "application/json" && ct !== "text/plain" && ct !== "application/octet-stream") return ct;
  try {
    const parsed = JSON.parse(Buffer.from(bytes).toString("utf8")) as { mediaType?: unknown };
    if (typeof parsed.mediaType === "string") return parsed.mediaType;
  } catch {
    // not JSON: fall through
  }
  return ct || OCI_MANIFEST;
}
