// The pure OCI domain: digests, references, media types, the error table.
export * from "./errors.js";
export * from "./digest.js";
export * from "./reference.js";
export * from "./media-types.js";
