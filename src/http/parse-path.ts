// Splits a /v2/… path into what it asks for. The name is still raw here: the
// router decides which part is a registry prefix before the grammar applies.

export type RegistryPath =
  | { readonly kind: "base" }
  | { readonly kind: "manifest"; readonly name: string; readonly reference: string }
  | { readonly kind: "blob"; readonly name: string; readonly digest: string }
  | { readonly kind: "tags"; readonly name: string }
  | { readonly kind: "referrers"; readonly name: string; readonly digest: string }
  | { readonly kind: "other" };

const RESOURCE_RE = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TAGS_RE = /^\/v2\/(.+)\/tags\/list$/;

export function parseRegistryPath(pathname: string): RegistryPath {
  if (pathname === "/v2/" || pathname === "/v2") return { kind: "base" };
  const m = RESOURCE_RE.exec(pathname);
  if (m) {
    const [, name, what, ref] = m as unknown as [string, string, string, string];
    if (what === "manifests") return { kind: "manifest", name, reference: ref };
    if (what === "blobs") return { kind: "blob", name, digest: ref };
    return { kind: "referrers", name, digest: ref };
  }
  const t = TAGS_RE.exec(pathname);
  if (t) return { kind: "tags", name: t[1]! };
  return { kind: "other" };
}
