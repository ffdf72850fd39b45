// Repository names and manifest references, per the OCI distribution spec grammar.
import { RegistryError } from "./errors.js";
import { tryParseDigest, type Digest } from "./digest.js";

// distribution/reference: path-component ("/" path-component)*
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const MAX_NAME = 255;

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME && NAME_RE.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/** A manifest reference: either a tag or a digest. */
export type Reference = { readonly kind: "tag"; readonly tag: string } | { readonly kind: "digest"; readonly digest: Digest };

/** Malformed manifest references are MANIFEST_UNKNOWN 404 — what distribution answers for them. */
export function parseReference(s: string): Reference {
  if (s.includes(":")) {
    const digest = tryParseDigest(s);
    if (digest) return { kind: "digest", digest };
    throw new RegistryError("DIGEST_INVALID", "invalid digest", { detail: { reference: s.slice(0, 200) } });
  }
  if (isValidTag(s)) return { kind: "tag", tag: s };
  throw new RegistryError("MANIFEST_UNKNOWN", "invalid tag", { status: 404, detail: { reference: s.slice(0, 200) } });
}

export function referenceString(ref: Reference): string {
  return ref.kind === "tag" ? ref.tag : ref.digest.value;
}
