// Image references as people type them (alpine, alpine:3.20, ghcr.io/o/app:1,
// quay.io/x/y@sha256:…, localhost:5001/app) → where to ask tug for them. A
// first component with a dot or a port, or "localhost", names the registry
// (Docker's rule); tug is then asked with ?ns=<registry>, the containerd
// convention, and without one the default upstream answers.
import { isValidName, isValidTag } from "../oci/reference.js";
import { tryParseDigest } from "../oci/digest.js";
import { UsageError } from "./args.js";

export interface ImageRef {
  /** What the user typed. */
  readonly text: string;
  /** The registry host, undefined for the default upstream. */
  readonly registry: string | undefined;
  readonly repository: string;
  /** A tag or a digest ("sha256:…"). */
  readonly reference: string;
}

export function parseImageRef(text: string): ImageRef {
  const bad = (why: string): never => {
    throw new UsageError(`${JSON.stringify(text)} is not an image reference: ${why} (use e.g. alpine:3.20 or ghcr.io/owner/app:1)`);
  };
  let rest = text.trim();
  if (rest === "") bad("it is empty");
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!tryParseDigest(digest)) bad(`${JSON.stringify(digest)} is not a sha256 digest`);
  }
  let registry: string | undefined;
  const slash = rest.indexOf("/");
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost") {
      registry = first.toLowerCase();
      rest = rest.slice(slash + 1);
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) bad(`${JSON.stringify(tag)} is not a valid tag`);
  }
  if (!isValidName(rest)) bad(`${JSON.stringify(rest)} is not a valid repository name (lowercase letters, digits, separators)`);
  return { text, registry, repository: rest, reference: digest ?? tag ?? "latest" };
}

/** The tug path and query for a manifest of ref (reference: a tag or a digest). */
export function manifestPath(ref: ImageRef, reference = ref.reference): string {
  return `/v2/${ref.repository}/manifests/${reference}${nsQuery(ref)}`;
}

export function blobPath(ref: ImageRef, digest: string): string {
  return `/v2/${ref.repository}/blobs/${digest}${nsQuery(ref)}`;
}

function nsQuery(ref: ImageRef): string {
  return ref.registry !== undefined ? `?ns=${encodeURIComponent(ref.registry)}` : "";
}
