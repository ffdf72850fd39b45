// Parsing of a single "Range: bytes=…" header against a known size (RFC 9110 §14).
import { RegistryError } from "../oci/errors.js";

export interface ByteRange {
  readonly start: number;
  /** inclusive */
  readonly end: number;
}

/**
 * undefined: no range, or one we ignore (multiple ranges, other units) — serve 200.
 * Throws SIZE_INVALID with status 416 when the range cannot be satisfied.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a, b] = m;
  if (a === "" && b === "") return undefined;
  let start: number;
  let end: number;
  if (a === "") {
    const suffix = Number(b);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== "" && Number(b) < start) return undefined;
  }
  if (start >= size || size === 0) throw unsatisfiable(size);
  return { start, end };
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError("SIZE_INVALID", "requested range not satisfiable", { status: 416, headers: { "Content-Range": `bytes */${size}` } });
}
