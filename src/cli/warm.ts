// `tug warm`: pre-pulls images into a running tug over its own registry API,
// the way a client would (index → platform manifests → config and layers), so
// the pulls of a later job burst are all hits. A blob tug already has is only
// HEADed (X-Cache: HIT), never downloaded again; a missing one is GET and read
// to the end, which makes tug fetch, verify and keep it. Every byte read is
// checked against its digest, so a warm that succeeds proves the cache is right.
import { createHash } from "node:crypto";
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from "../oci/media-types.js";
import { UsageError } from "./args.js";
import { blobPath, manifestPath, type ImageRef } from "./image-ref.js";

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

export function parsePlatform(text: string): Platform {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9_.-]+$/.test(p))) {
    throw new UsageError(`--platform: ${JSON.stringify(text)} is not a platform (use os/arch[/variant], e.g. linux/arm64)`);
  }
  const [os = "", architecture = "", variant] = parts;
  return variant !== undefined ? { os, architecture, variant } : { os, architecture };
}

export function platformString(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter((x) => x !== undefined && x !== "").join("/");
}

/** linux/arm64 matches any arm64 variant; linux/arm64/v8 also matches an arm64 entry with no variant (v8 is arm64's default). */
export function platformMatches(want: Platform, have: Platform): boolean {
  if (want.os !== have.os || want.architecture !== have.architecture) return false;
  if (want.variant === undefined) return true;
  const variant = have.variant ?? (have.architecture === "arm64" ? "v8" : undefined);
  return variant === want.variant;
}

/** Progress of one image, updated in place as the warm goes; a ProgressBoard draws it. */
export interface ImageProgress {
  readonly name: string;
  phase: "waiting" | "resolving" | "fetching" | "done" | "failed";
  totalBytes: number;
  doneBytes: number;
  layersTotal: number;
  layersDone: number;
  note: string | undefined;
}

export interface ImageReport {
  readonly ref: ImageRef;
  readonly ok: boolean;
  readonly error: string | undefined;
  /** Digest of the manifest the reference resolved to (an index for a multi-platform image). */
  readonly digest: string | undefined;
  /** Platforms warmed (empty for a single-platform image whose platform the manifest does not say). */
  readonly platforms: string[];
  readonly manifests: { fetched: number; cached: number };
  readonly blobs: { total: number; fetched: number; fetchedBytes: number; cached: number; cachedBytes: number };
  readonly layers: number;
}

export interface WarmReport {
  readonly server: string;
  readonly images: ImageReport[];
  readonly elapsedMs: number;
  /** Each blob counted once, however many images share it. */
  readonly unique: { fetched: number; fetchedBytes: number; cached: number; cachedBytes: number };
}

export interface WarmOptions {
  /** tug's base URL, e.g. http://127.0.0.1:5000. */
  readonly server: string;
  readonly images: readonly ImageRef[];
  /** undefined: every platform of an index. */
  readonly platforms?: readonly Platform[];
  /** Blob downloads at once, over all images (default 4). */
  readonly concurrency?: number;
  /** Sent with every request, for a tug whose clients log in (auth.users): "Basic …". */
  readonly authorization?: string;
  /** Called with an image's progress whenever it changes. */
  readonly onProgress?: (p: ImageProgress) => void;
  readonly now?: () => number;
}

/** "host:5000" or "http://host:5000/" → "http://host:5000"; anything else is a UsageError. */
export function normalizeServer(text: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `http://${text}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new UsageError(`--server: ${JSON.stringify(text)} is not a URL (use e.g. http://tug.internal:5000)`);
  }
  if ((u.protocol !== "http:" && u.protocol !== "https:") || u.username !== "" || u.search !== "" || (u.pathname !== "/" && u.pathname !== "")) {
    throw new UsageError(`--server: ${JSON.stringify(text)} must be an http(s) origin with no path, e.g. http://tug.internal:5000`);
  }
  return u.origin;
}

interface Descriptor {
  readonly mediaType?: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: Platform;
}

interface ParsedManifest {
  readonly kind: "index" | "image";
  readonly manifests: Descriptor[];
  readonly config: Descriptor | undefined;
  readonly layers: Descriptor[];
}

interface BlobResult {
  readonly cached: boolean;
  readonly size: number;
}

/** A failure that ends one image's warm with a one-line reason. */
class WarmError extends Error {}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

function asDescriptor(v: unknown, what: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (!d || typeof d.digest !== "string" || !DIGEST_RE.test(d.digest) || typeof d.size !== "number" || d.size < 0) {
    throw new WarmError(`the manifest has an invalid ${what} descriptor`);
  }
  return d as Descriptor;
}

function parseManifest(bytes: Buffer): ParsedManifest {
  let json: { manifests?: unknown; config?: unknown; layers?: unknown; schemaVersion?: unknown };
  try {
    json = JSON.parse(bytes.toString("utf8")) as typeof json;
  } catch {
    throw new WarmError("the manifest is not JSON");
  }
  if (Array.isArray(json.manifests)) {
    return { kind: "index", manifests: json.manifests.map((m) => asDescriptor(m, "manifest")), config: undefined, layers: [] };
  }
  if (json.config !== undefined && Array.isArray(json.layers)) {
    return { kind: "image", manifests: [], config: asDescriptor(json.config, "config"), layers: json.layers.map((l) => asDescriptor(l, "layer")) };
  }
  throw new WarmError(`unsupported manifest (schemaVersion ${String(json.schemaVersion)}): only OCI and Docker schema 2 images and indexes can be warmed`);
}

/** The first line of an OCI error body, e.g. "MANIFEST_UNKNOWN: manifest unknown to upstream docker.io". */
async function errorText(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const e = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    if (e) return `tug answered ${res.status} ${e.code ?? ""}: ${e.message ?? ""}`.trim();
  } catch {
    // not an OCI error body
  }
  return `tug answered ${res.status}`;
}

function networkError(err: unknown, server: string): WarmError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
  return new WarmError(`cannot reach tug at ${server}: ${why}`);
}

/** At most n tasks at once. */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((resolve) => queue.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}

export async function warmImages(opts: WarmOptions): Promise<WarmReport> {
  const now = opts.now ?? Date.now;
  const started = now();
  const server = opts.server;
  const limit = limiter(Math.max(1, opts.concurrency ?? 4));
  // One warm per blob however many images share it; later images await the first.
  const blobWarms = new Map<string, Promise<BlobResult>>();
  const unique = { fetched: 0, fetchedBytes: 0, cached: 0, cachedBytes: 0 };

  const call = async (path: string, init: RequestInit & { headers?: Record<string, string> }): Promise<Response> => {
    const headers = opts.authorization !== undefined ? { ...init.headers, authorization: opts.authorization } : init.headers;
    try {
      return await fetch(server + path, { ...init, ...(headers !== undefined ? { headers } : {}) });
    } catch (err) {
      throw networkError(err, server);
    }
  };

  const getManifest = async (ref: ImageRef, reference: string): Promise<{ bytes: Buffer; digest: string; cached: boolean }> => {
    const res = await call(manifestPath(ref, reference), { headers: { accept: MANIFEST_ACCEPT } });
    if (res.status !== 200) throw new WarmError(await errorText(res));
    const bytes = Buffer.from(await res.arrayBuffer());
    if (bytes.length > MAX_MANIFEST_BYTES) throw new WarmError("the manifest is larger than 4 MiB");
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    const claimed = res.headers.get("docker-content-digest");
    if ((reference.startsWith("sha256:") && digest !== reference) || (claimed !== null && claimed !== digest)) {
      throw new WarmError(`manifest ${reference} does not match its digest (got ${digest})`);
    }
    return { bytes, digest, cached: res.headers.get("x-cache") !== "MISS" };
  };

  /** HEAD first: a blob tug has costs no transfer. Otherwise GET it to the end, hashing. */
  const warmBlob = (ref: ImageRef, d: Descriptor, onBytes: (n: number) => void): Promise<BlobResult> => {
    const path = blobPath(ref, d.digest);
    const head = async (): Promise<BlobResult | undefined> => {
      const res = await call(path, { method: "HEAD" });
      if (res.status === 200 && res.headers.get("x-cache") === "HIT") return { cached: true, size: d.size };
      if (res.status !== 200) throw new WarmError(`blob ${d.digest.slice(0, 19)}: ${await errorText(res)}`);
      return undefined;
    };
    const get = async (): Promise<BlobResult> => {
      const res = await call(path, {});
      if (res.status !== 200 || !res.body) throw new WarmError(`blob ${d.digest.slice(0, 19)}: ${await errorText(res)}`);
      const hash = createHash("sha256");
      let n = 0;
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          hash.update(chunk);
          n += chunk.length;
          onBytes(chunk.length);
        }
      } catch (err) {
        throw new WarmError(`blob ${d.digest.slice(0, 19)} was cut off after ${n} bytes (${err instanceof Error ? err.message : String(err)})`);
      }
      const digest = `sha256:${hash.digest("hex")}`;
      if (digest !== d.digest || n !== d.size) throw new WarmError(`blob ${d.digest.slice(0, 19)} arrived wrong (${n} bytes, ${digest})`);
      return { cached: res.headers.get("x-cache") === "HIT", size: n };
    };
    return limit(async () => {
      const hit = await head();
      if (hit) {
        onBytes(d.size);
        return hit;
      }
      return get();
    });
  };

  const warmOne = async (ref: ImageRef): Promise<ImageReport> => {
    const progress: ImageProgress = { name: ref.text, phase: "resolving", totalBytes: 0, doneBytes: 0, layersTotal: 0, layersDone: 0, note: undefined };
    const manifests = { fetched: 0, cached: 0 };
    const blobs = { total: 0, fetched: 0, fetchedBytes: 0, cached: 0, cachedBytes: 0 };
    const platforms: string[] = [];
    let digest: string | undefined;
    let layers = 0;
    const changed = (): void => opts.onProgress?.(progress);
    changed();
    try {
      const top = await getManifest(ref, ref.reference);
      digest = top.digest;
      manifests[top.cached ? "cached" : "fetched"]++;
      const parsed = parseManifest(top.bytes);
      const images: ParsedManifest[] = [];
      if (parsed.kind === "index") {
        // Attestations and signatures sit in indexes as platform unknown/unknown: no client pulls them.
        const runnable = parsed.manifests.filter((m) => m.platform === undefined || m.platform.os !== "unknown");
        const wanted = opts.platforms === undefined ? runnable : runnable.filter((m) => m.platform !== undefined && opts.platforms!.some((p) => platformMatches(p, m.platform!)));
        if (wanted.length === 0) {
          const have = runnable.map((m) => (m.platform ? platformString(m.platform) : "?")).join(", ");
          throw new WarmError(`no ${opts.platforms!.map(platformString).join(" or ")} image in ${ref.text} (it has ${have || "none"})`);
        }
        for (const m of wanted) {
          const child = await getManifest(ref, m.digest);
          manifests[child.cached ? "cached" : "fetched"]++;
          const p = parseManifest(child.bytes);
          if (p.kind !== "image") throw new WarmError(`${m.digest.slice(0, 19)} in the index is not an image manifest`);
          images.push(p);
          if (m.platform) platforms.push(platformString(m.platform));
        }
      } else {
        images.push(parsed);
      }
      const todo = new Map<string, { d: Descriptor; layer: boolean }>();
      for (const img of images) {
        if (img.config) todo.set(img.config.digest, { d: img.config, layer: todo.get(img.config.digest)?.layer ?? false });
        for (const l of img.layers) todo.set(l.digest, { d: l, layer: true });
      }
      for (const { d, layer } of todo.values()) {
        progress.totalBytes += d.size;
        if (layer) progress.layersTotal++;
      }
      layers = progress.layersTotal;
      blobs.total = todo.size;
      progress.phase = "fetching";
      changed();
      await Promise.all(
        [...todo.values()].map(async ({ d, layer }) => {
          let mine = blobWarms.get(d.digest);
          const first = mine === undefined;
          let streamed = 0;
          if (mine === undefined) {
            mine = warmBlob(ref, d, (n) => {
              streamed += n;
              progress.doneBytes += n;
              changed();
            });
            blobWarms.set(d.digest, mine);
          }
          const r = await mine;
          if (!first) progress.doneBytes += d.size - streamed;
          if (first) {
            unique[r.cached ? "cached" : "fetched"]++;
            unique[r.cached ? "cachedBytes" : "fetchedBytes"] += r.size;
          }
          blobs[r.cached ? "cached" : "fetched"]++;
          blobs[r.cached ? "cachedBytes" : "fetchedBytes"] += r.size;
          if (layer) progress.layersDone++;
          changed();
        }),
      );
      progress.phase = "done";
      changed();
      return { ref, ok: true, error: undefined, digest, platforms, manifests, blobs, layers };
    } catch (err) {
      const message = err instanceof WarmError ? err.message : err instanceof Error ? err.message : String(err);
      progress.phase = "failed";
      progress.note = message;
      changed();
      return { ref, ok: false, error: message, digest, platforms, manifests, blobs, layers };
    }
  };

  const images = await Promise.all(opts.images.map(warmOne));
  return { server, images, elapsedMs: now() - started, unique };
}
