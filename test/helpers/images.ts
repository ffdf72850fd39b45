// Real, valid OCI / Docker images built in memory (ustar + gzip layers, image
// config, manifest, index) and pushed to a registry over the distribution HTTP
// API, so tests can seed an upstream without any external tool.
import { createCipheriv, createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

export const MEDIA_TYPES = {
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

/** The Accept list a registry client sends for manifests (all four kinds). */
export const MANIFEST_ACCEPT = [
  MEDIA_TYPES.ociIndex,
  MEDIA_TYPES.ociManifest,
  MEDIA_TYPES.dockerManifestList,
  MEDIA_TYPES.dockerManifest,
].join(", ");

export type ImageFormat = "oci" | "docker";

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
}

/** A blob with its bytes. */
export interface BuiltBlob extends Descriptor {
  data: Buffer;
}

export interface BuiltLayer extends BuiltBlob {
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffId: string;
  /** Size of the uncompressed tar. */
  tarSize: number;
}

export interface BuiltImage {
  kind: "image";
  format: ImageFormat;
  platform: Platform;
  /** Media type of the manifest. */
  mediaType: string;
  /** Exact manifest bytes, as pushed. */
  manifest: Buffer;
  digest: string;
  size: number;
  config: BuiltBlob;
  layers: BuiltLayer[];
}

export interface BuiltIndex {
  kind: "index";
  format: ImageFormat;
  mediaType: string;
  manifest: Buffer;
  digest: string;
  size: number;
  images: BuiltImage[];
}

export type LayerSpec =
  | { files: Record<string, Buffer | string> }
  | { randomBytes: number; seed?: number; path?: string };

export interface BuildImageOptions {
  layers: LayerSpec[];
  format: ImageFormat;
  /** Defaults to amd64. */
  arch?: string;
  /** Defaults to linux. */
  os?: string;
  variant?: string;
  cmd?: string[];
  /** gzip level for layers; 1 by default (fast). */
  gzipLevel?: number;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

// ---------------------------------------------------------------- tar writer

const BLOCK = 512;
// A fixed mtime keeps every build byte-identical, so digests are stable.
const MTIME = 1_700_000_000;

function writeString(header: Buffer, value: string, offset: number, length: number): void {
  const bytes = Buffer.from(value, "utf8");
  if (bytes.length > length) throw new Error(`tar: field too long: ${value}`);
  bytes.copy(header, offset);
}

function writeOctal(header: Buffer, value: number, offset: number, length: number): void {
  // length-1 octal digits followed by NUL, as ustar expects.
  const text = value.toString(8).padStart(length - 1, "0");
  if (text.length > length - 1) throw new Error(`tar: number too large: ${value}`);
  writeString(header, text, offset, length - 1);
}

function splitName(name: string): { name: string; prefix: string } {
  if (Buffer.byteLength(name) <= 100) return { name, prefix: "" };
  // ustar: prefix (<=155) + "/" + name (<=100), split at a slash.
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== "/") continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest.length > 0) {
      return { name: rest, prefix };
    }
  }
  throw new Error(`tar: path too long for ustar: ${name}`);
}

function tarHeader(path: string, type: "file" | "dir", size: number): Buffer {
  const header = Buffer.alloc(BLOCK);
  const { name, prefix } = splitName(path);
  writeString(header, name, 0, 100);
  writeOctal(header, type === "dir" ? 0o755 : 0o644, 100, 8);
  writeOctal(header, 0, 108, 8); // uid
  writeOctal(header, 0, 116, 8); // gid
  writeOctal(header, size, 124, 12);
  writeOctal(header, MTIME, 136, 12);
  header.fill(0x20, 148, 156); // checksum computed with the field as spaces
  header[156] = type === "dir" ? 0x35 /* '5' */ : 0x30 /* '0' */;
  writeString(header, "ustar\0", 257, 6);
  writeString(header, "00", 263, 2);
  writeString(header, "root", 265, 32);
  writeString(header, "root", 297, 32);
  writeString(header, prefix, 345, 155);
  let sum = 0;
  for (const byte of header) sum += byte;
  writeString(header, `${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  return header;
}

/**
 * A ustar archive of regular files and directories. Keys ending in "/" are
 * directories; parent directories of every file are added automatically.
 */
export function createTar(files: Record<string, Buffer | string>): Buffer {
  const dirs = new Set<string>();
  const regular = new Map<string, Buffer>();
  for (const [rawPath, content] of Object.entries(files)) {
    const path = rawPath.replace(/^\.?\/+/, "");
    const parts = path.split("/").filter((p) => p.length > 0);
    if (parts.length === 0 || parts.includes("..")) throw new Error(`tar: bad path ${rawPath}`);
    const isDir = path.endsWith("/");
    const parents = isDir ? parts.length : parts.length - 1;
    for (let i = 1; i <= parents; i++) dirs.add(`${parts.slice(0, i).join("/")}/`);
    if (!isDir) regular.set(parts.join("/"), typeof content === "string" ? Buffer.from(content) : content);
  }
  const chunks: Buffer[] = [];
  for (const dir of [...dirs].sort()) chunks.push(tarHeader(dir, "dir", 0));
  for (const [path, data] of [...regular].sort(([a], [b]) => (a < b ? -1 : 1))) {
    chunks.push(tarHeader(path, "file", data.length), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad > 0) chunks.push(Buffer.alloc(pad));
  }
  chunks.push(Buffer.alloc(BLOCK * 2)); // end-of-archive marker
  return Buffer.concat(chunks);
}

/** Fast deterministic pseudo-random bytes: AES-128-CTR over zeros, keyed by the seed. */
export function pseudoRandomBytes(size: number, seed = 0): Buffer {
  const key = createHash("sha256").update(`tug-test-seed:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv("aes-128-ctr", key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(size)), cipher.final()]);
}

// ---------------------------------------------------------------- images

function layerTar(spec: LayerSpec): Buffer {
  if ("files" in spec) return createTar(spec.files);
  const path = spec.path ?? `data/random-${spec.seed ?? 0}.bin`;
  return createTar({ [path]: pseudoRandomBytes(spec.randomBytes, spec.seed ?? 0) });
}

function toBuffer(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value, null, 2));
}

export function buildImage(opts: BuildImageOptions): BuiltImage {
  const oci = opts.format === "oci";
  const platform: Platform = {
    architecture: opts.arch ?? "amd64",
    os: opts.os ?? "linux",
    ...(opts.variant !== undefined ? { variant: opts.variant } : {}),
  };
  const layerMediaType = oci ? MEDIA_TYPES.ociLayerGzip : MEDIA_TYPES.dockerLayerGzip;
  // Random data does not compress: level 0 (stored) is valid gzip and far faster.
  const layers: BuiltLayer[] = opts.layers.map((spec) => {
    const tar = layerTar(spec);
    const level = "randomBytes" in spec ? 0 : (opts.gzipLevel ?? 1);
    const data = gzipSync(tar, { level });
    return {
      mediaType: layerMediaType,
      digest: sha256(data),
      size: data.length,
      data,
      diffId: sha256(tar),
      tarSize: tar.length,
    };
  });
  const cmd = opts.cmd ?? ["/bin/sh"];
  const configJson = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
    created: new Date(MTIME * 1000).toISOString(),
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: cmd },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l, i) => ({
      created: new Date(MTIME * 1000).toISOString(),
      created_by: `tug-test layer ${i} ${l.diffId.slice(7, 19)}`,
    })),
  };
  const configData = toBuffer(configJson);
  const config: BuiltBlob = {
    mediaType: oci ? MEDIA_TYPES.ociConfig : MEDIA_TYPES.dockerConfig,
    digest: sha256(configData),
    size: configData.length,
    data: configData,
  };
  const mediaType = oci ? MEDIA_TYPES.ociManifest : MEDIA_TYPES.dockerManifest;
  const manifest = toBuffer({
    schemaVersion: 2,
    mediaType,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  });
  return {
    kind: "image",
    format: opts.format,
    platform,
    mediaType,
    manifest,
    digest: sha256(manifest),
    size: manifest.length,
    config,
    layers,
  };
}

/**
 * An image index (OCI by default, or a Docker manifest list) over the given
 * images. Platforms default to each image's own platform.
 */
export function buildIndex(
  images: BuiltImage[],
  platforms?: Platform[],
  format: ImageFormat = "oci",
): BuiltIndex {
  const mediaType = format === "oci" ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.dockerManifestList;
  const manifest = toBuffer({
    schemaVersion: 2,
    mediaType,
    manifests: images.map((image, i) => ({
      mediaType: image.mediaType,
      digest: image.digest,
      size: image.size,
      platform: platforms?.[i] ?? image.platform,
    })),
  });
  return { kind: "index", format, mediaType, manifest, digest: sha256(manifest), size: manifest.length, images };
}

/** Every blob (configs and layers) an image or index references, deduplicated by digest. */
export function allBlobs(target: BuiltImage | BuiltIndex): BuiltBlob[] {
  const images = target.kind === "index" ? target.images : [target];
  const seen = new Map<string, BuiltBlob>();
  for (const image of images) {
    for (const blob of [image.config, ...image.layers]) seen.set(blob.digest, blob);
  }
  return [...seen.values()];
}

// ---------------------------------------------------------------- pushing

async function check(res: Response, what: string, expected: number[]): Promise<void> {
  if (!expected.includes(res.status)) {
    const body = await res.text().catch(() => "");
    throw new Error(`${what}: HTTP ${res.status} ${body.slice(0, 500)}`);
  }
}

// fetch's BodyInit wants an ArrayBuffer-backed view; a Buffer's type allows SharedArrayBuffer.
function bodyOf(data: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
}

/** Uploads one blob monolithically (POST then PUT ?digest=), unless the registry has it. */
export async function pushBlob(registryUrl: string, repo: string, blob: { digest: string; data: Buffer }): Promise<void> {
  const base = registryUrl.replace(/\/+$/, "");
  const head = await fetch(`${base}/v2/${repo}/blobs/${blob.digest}`, { method: "HEAD" });
  if (head.status === 200) return;
  const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await check(start, `start upload of ${blob.digest} to ${repo}`, [202]);
  await start.arrayBuffer();
  const location = start.headers.get("location");
  if (location === null) throw new Error(`upload of ${blob.digest}: no Location header`);
  const url = new URL(location, `${base}/`);
  url.searchParams.set("digest", blob.digest);
  const put = await fetch(url, {
    method: "PUT",
    headers: { "content-type": "application/octet-stream", "content-length": String(blob.data.length) },
    body: bodyOf(blob.data),
  });
  await check(put, `upload of ${blob.digest} to ${repo}`, [201]);
  await put.arrayBuffer();
}

/** PUTs exact manifest bytes under a tag or digest. */
export async function pushManifest(
  registryUrl: string,
  repo: string,
  reference: string,
  manifest: { mediaType: string; manifest: Buffer; digest: string },
): Promise<void> {
  const base = registryUrl.replace(/\/+$/, "");
  const res = await fetch(`${base}/v2/${repo}/manifests/${reference}`, {
    method: "PUT",
    headers: { "content-type": manifest.mediaType },
    body: bodyOf(manifest.manifest),
  });
  await check(res, `push manifest ${repo}:${reference}`, [201]);
  await res.arrayBuffer();
  const got = res.headers.get("docker-content-digest");
  if (got !== null && got !== manifest.digest) {
    throw new Error(`push manifest ${repo}:${reference}: registry computed ${got}, expected ${manifest.digest}`);
  }
}

export interface PushResult {
  repo: string;
  tag: string;
  /** Digest of the top-level manifest (the index for an index). */
  digest: string;
  mediaType: string;
  /** Digests of the platform manifests (one for a plain image). */
  manifestDigests: string[];
  blobDigests: string[];
}

/** Pushes all blobs, then child manifests (by digest), then the top-level manifest under `tag`. */
export async function pushImage(
  registryUrl: string,
  repo: string,
  tag: string,
  target: BuiltImage | BuiltIndex,
): Promise<PushResult> {
  const blobs = allBlobs(target);
  await Promise.all(blobs.map((blob) => pushBlob(registryUrl, repo, blob)));
  const images = target.kind === "index" ? target.images : [target];
  if (target.kind === "index") {
    await Promise.all(images.map((image) => pushManifest(registryUrl, repo, image.digest, image)));
  }
  await pushManifest(registryUrl, repo, tag, target);
  return {
    repo,
    tag,
    digest: target.digest,
    mediaType: target.mediaType,
    manifestDigests: images.map((i) => i.digest),
    blobDigests: blobs.map((b) => b.digest),
  };
}

// ---------------------------------------------------------------- fixtures

export interface SeededImage {
  repo: string;
  tag: string;
  /** "repo:tag" */
  reference: string;
  /** Digest of the top-level manifest. */
  digest: string;
  mediaType: string;
  built: BuiltImage | BuiltIndex;
  /** The platform images (one for a plain image). */
  images: BuiltImage[];
}

export interface StandardImages {
  /** library/alpine:3.20 — OCI index, amd64 + arm64 (v8), 3 small layers each. */
  alpine: SeededImage & { built: BuiltIndex; amd64: BuiltImage; arm64: BuiltImage };
  /** library/busybox:1.36 — Docker schema 2 manifest, 2 layers. */
  busybox: SeededImage & { built: BuiltImage };
  /** team/app:v1 — single-platform OCI image, 4 layers. */
  app: SeededImage & { built: BuiltImage };
  /** big/blob:latest — OCI image with one 64 MiB random layer. */
  big: SeededImage & { built: BuiltImage };
}

export const BIG_LAYER_BYTES = 64 * 1024 * 1024;

function smallFiles(name: string, arch: string, layer: number): Record<string, string> {
  return {
    [`etc/${name}-release`]: `NAME=${name}\nARCH=${arch}\nLAYER=${layer}\n`,
    [`usr/share/${name}/layer-${layer}.txt`]: `${name} ${arch} layer ${layer}\n`.repeat(20),
    ...(layer === 0 ? { "bin/": "", "tmp/": "" } : {}),
  };
}

function seeded<T extends BuiltImage | BuiltIndex>(repo: string, tag: string, built: T): SeededImage & { built: T } {
  return {
    repo,
    tag,
    reference: `${repo}:${tag}`,
    digest: built.digest,
    mediaType: built.mediaType,
    built,
    images: built.kind === "index" ? built.images : [built as BuiltImage],
  };
}

let standardCache: StandardImages | undefined;

/** Builds (once per process) the standard fixture set without pushing it. */
export function buildStandardImages(): StandardImages {
  if (standardCache !== undefined) return standardCache;
  const alpineFor = (arch: string, variant?: string): BuiltImage =>
    buildImage({
      format: "oci",
      arch,
      ...(variant !== undefined ? { variant } : {}),
      layers: [0, 1, 2].map((i) => ({ files: smallFiles("alpine", arch, i) })),
    });
  const amd64 = alpineFor("amd64");
  const arm64 = alpineFor("arm64", "v8");
  const busybox = buildImage({
    format: "docker",
    layers: [0, 1].map((i) => ({ files: smallFiles("busybox", "amd64", i) })),
  });
  const app = buildImage({
    format: "oci",
    cmd: ["/app/run"],
    layers: [0, 1, 2, 3].map((i) => ({ files: smallFiles("app", "amd64", i) })),
  });
  const big = buildImage({ format: "oci", layers: [{ randomBytes: BIG_LAYER_BYTES, seed: 64 }] });
  const standard: StandardImages = {
    alpine: { ...seeded("library/alpine", "3.20", buildIndex([amd64, arm64])), amd64, arm64 },
    busybox: seeded("library/busybox", "1.36", busybox),
    app: seeded("team/app", "v1", app),
    big: seeded("big/blob", "latest", big),
  };
  standardCache = standard;
  return standard;
}

/** Pushes the standard fixture set (see StandardImages) to a registry and describes it. */
export async function seedStandardImages(registryUrl: string): Promise<StandardImages> {
  const images = buildStandardImages();
  await Promise.all(
    Object.values(images).map((image: SeededImage) => pushImage(registryUrl, image.repo, image.tag, image.built)),
  );
  return images;
}

/** The OCI chain ID of a stack of layers (what containerd names its committed snapshots). */
export function chainId(diffIds: string[]): string {
  let chain: string | undefined;
  for (const diffId of diffIds) chain = chain === undefined ? diffId : sha256(`${chain} ${diffId}`);
  if (chain === undefined) throw new Error("chainId: no layers");
  return chain;
}
