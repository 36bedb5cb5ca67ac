export * from './types';
export * from './errors';
export { validateKey, guessMediaType, keyOf } from './keys';
export { FileArtifactStore } from './file-store';
export { S3ArtifactStore, DEFAULT_PART_SIZE_BYTES, type S3StoreOptions } from './s3-store';
export { openStore, DEFAULT_STORE_URI } from './open-store';
export {
  canonicalDigest,
  treeDigest,
  listLocalFiles,
  fileSha256,
  localTreeDigest,
  storedDigest,
  claimedDigest,
  expectDigest,
  verifyArtifactRef,
} from './digests';
export { putJsonl, readJsonl, getBuffer, type ManifestLine } from './manifest';
export { sha256Hex, streamSha256 } from './hashing';
export { withRetry, isTransient, type RetryPolicy } from './retry';
