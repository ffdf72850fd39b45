// Digests as typed values: parsed once at the edge, never a raw path segment deeper in.
import { createHash, type Hash } from "node:crypto";
import { RegistryError } from "./errors.js";

export type DigestAlgorithm = "sha256" | "sha512";

export interface Digest {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
  /** "sha256:<hex>" */
  readonly value: string;
}

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** Returns undefined for anything that is not a digest tug accepts. */
export function tryParseDigest(s: string): Digest | undefined {
  if (!DIGEST_RE.test(s)) return undefined;
  const i = s.indexOf(":");
  return { algorithm: s.slice(0, i) as DigestAlgorithm, hex: s.slice(i + 1), value: s };
}

export function parseDigest(s: string): Digest {
  const d = tryParseDigest(s);
  if (!d) throw new RegistryError("DIGEST_INVALID", "invalid digest", { detail: { digest: s.slice(0, 200) } });
  return d;
}

export function looksLikeDigest(s: string): boolean {
  return s.includes(":");
}

export function createDigester(algorithm: DigestAlgorithm = "sha256"): Hash {
  return createHash(algorithm);
}

export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = "sha256"): Digest {
  const hex = createHash(algorithm).update(bytes).digest("hex");
  return { algorithm, hex, value: `${algorithm}:${hex}` };
}
