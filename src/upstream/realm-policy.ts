// Where an upstream's credentials may go: the upstream's own host, a token realm on
// the same registrable domain, or a realm the config lists in authRealms
// (PROTOCOL.md lesson 17, CVE-2026-33540: a foreign realm received the credentials).
import { isIP } from "node:net";

// A short list of multi-label public suffixes common among registries; without a
// full public-suffix list we refuse to treat "co.uk"-style suffixes as one domain.
const MULTI_LABEL_SUFFIXES = new Set(["co.uk", "com.au", "co.jp", "com.br", "co.in", "azurecr.io", "amazonaws.com", "pkg.dev", "ocir.io"]);

export function registrableDomain(hostname: string): string {
  const h = hostname.toLowerCase().replace(/\.$/, "");
  if (isIP(h) || !h.includes(".")) return h;
  const labels = h.split(".");
  const lastTwo = labels.slice(-2).join(".");
  if (MULTI_LABEL_SUFFIXES.has(lastTwo) && labels.length >= 3) return labels.slice(-3).join(".");
  return lastTwo;
}

export function realmAllowed(realm: URL, upstream: URL, authRealms: readonly string[]): boolean {
  if (realm.protocol !== "https:" && realm.protocol !== "http:") return false;
  if (realm.hostname === upstream.hostname) return true;
  for (const allowed of authRealms) {
    if (/^https?:\/\//.test(allowed)) {
      if (realm.href.startsWith(allowed) || new URL(allowed).host === realm.host) return true;
    } else if (allowed.toLowerCase() === realm.hostname.toLowerCase() || allowed.toLowerCase() === realm.host.toLowerCase()) {
      return true;
    }
  }
  if (isIP(realm.hostname) || isIP(upstream.hostname)) return false;
  return registrableDomain(realm.hostname) === registrableDomain(upstream.hostname);
}

/** Addresses no redirect may lead to: link-local (cloud metadata) and unspecified. */
export function forbiddenRedirectHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "metadata.google.internal" || h === "metadata") return true;
  const v = isIP(h);
  if (v === 4) return h.startsWith("169.254.") || h === "0.0.0.0";
  if (v === 6) return /^fe[89ab][0-9a-f]:/.test(h) || h === "::" || h.startsWith("::ffff:169.254.");
  return false;
}
