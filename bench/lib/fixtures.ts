// The images every system is measured with, generated and pushed to the
// upstream: one image with one big random layer, one with 40 small layers, a
// two-platform index, and two loose random blobs for the cold-GET runs.
import { buildImage, buildIndex, pseudoRandomBytes, pushBlob, pushImage, sha256, type BuiltImage, type BuiltIndex } from "../../test/helpers/images.js";

export interface BenchImages {
  /** bench/big:latest — one random layer of bigLayerBytes. */
  big: { repo: string; tag: string; image: BuiltImage; layerDigest: string; layerSize: number };
  /** bench/layers:latest — 40 small layers; its manifest is the by-digest target. */
  layers: { repo: string; tag: string; image: BuiltImage };
  /** bench/multi:latest — an OCI index over amd64 and arm64; the by-tag target. */
  multi: { repo: string; tag: string; index: BuiltIndex };
  /** Loose blobs in bench/cold: [0] for one cold GET, [1] for N concurrent ones. */
  cold: { repo: string; digests: [string, string]; size: number };
}

export async function seedBenchImages(registryUrl: string, sizes: { bigLayerBytes: number; coldBlobBytes: number }): Promise<BenchImages> {
  const big = buildImage({ format: "oci", layers: [{ randomBytes: sizes.bigLayerBytes, seed: 4242 }] });
  const layers = buildImage({
    format: "oci",
    layers: Array.from({ length: 40 }, (_, i) => ({ files: { [`opt/bench/layer-${i}.txt`]: `bench layer ${i}\n`.repeat(40) } })),
  });
  const platform = (arch: string, variant?: string): BuiltImage =>
    buildImage({ format: "oci", arch, ...(variant ? { variant } : {}), layers: [0, 1, 2].map((i) => ({ files: { [`etc/bench-${arch}-${i}`]: `${arch} ${i}\n` } })) });
  const multi = buildIndex([platform("amd64"), platform("arm64", "v8")]);
  const coldData = [pseudoRandomBytes(sizes.coldBlobBytes, 1001), pseudoRandomBytes(sizes.coldBlobBytes, 1002)];
  const coldDigests = coldData.map((d) => sha256(d)) as [string, string];
  await Promise.all([
    pushImage(registryUrl, "bench/big", "latest", big),
    pushImage(registryUrl, "bench/layers", "latest", layers),
    pushImage(registryUrl, "bench/multi", "latest", multi),
    ...coldData.map((data, i) => pushBlob(registryUrl, "bench/cold", { digest: coldDigests[i]!, data })),
  ]);
  const layer = big.layers[0]!;
  return {
    big: { repo: "bench/big", tag: "latest", image: big, layerDigest: layer.digest, layerSize: layer.size },
    layers: { repo: "bench/layers", tag: "latest", image: layers },
    multi: { repo: "bench/multi", tag: "latest", index: multi },
    cold: { repo: "bench/cold", digests: coldDigests, size: sizes.coldBlobBytes },
  };
}
