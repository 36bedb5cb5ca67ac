import type { Readable } from 'node:stream';

/**
 * Where an artifact is and the sha256 its bytes should have: what a request's reference claims and
 * what a lineage records of its inputs. ArtifactRef and common.v1.ArtifactRef both fit.
 */
export interface DigestClaim {
  uri: string;
  /** Lower-case hex sha256, or empty: a bare URI, nothing to check. */
  sha256: string;
}

/** A content-addressed object: where it is, what it is, and its sha256. Mirrors common.v1.ArtifactRef. */
export interface ArtifactRef extends DigestClaim {
  sizeBytes: number;
  mediaType: string;
}

/** An object as a listing sees it; sha256 is known only where the backend keeps it per object. */
export interface ObjectInfo {
  key: string;
  uri: string;
  sizeBytes: number;
  lastModified: Date;
}

/** What put() accepts: a stream is consumed once and never held in memory whole. */
export type ObjectBody = Readable | AsyncIterable<Uint8Array> | Uint8Array | string;

export interface PutOptions {
  /** IANA media type; default guessed from the key's extension. */
  mediaType?: string;
  /**
   * The sha256 the bytes must have. The put hashes them anyway, so the same pass checks them: on a
   * mismatch it fails with DigestMismatchError and publishes nothing (a batch put too).
   */
  sha256?: string;
}

/**
 * One interface, two backends (local filesystem, S3/MinIO). Keys are relative POSIX paths.
 * Writes are atomic: a reader sees either the whole new object or nothing.
 */
export interface ArtifactStore {
  /** The store's root, e.g. `file:///data/.medsyn` or `s3://bucket/prefix`. */
  readonly rootUri: string;
  /** Fails with StoreUnavailableError when the backend cannot be reached or used. */
  check(): Promise<void>;
  /** Streams body into the store under key; sha256 and size are computed while streaming. */
  put(key: string, body: ObjectBody, options?: PutOptions): Promise<ArtifactRef>;
  /**
   * Creates the object only if nothing is at key yet, atomically against every other writer (other
   * processes and replicas included): true when this call created it, false when key was taken (the
   * object there is left as it is). For small records such as claims: the body is held in memory.
   */
  putIfAbsent(key: string, body: string | Uint8Array, options?: PutOptions): Promise<boolean>;
  /** A stream of the object's bytes; ArtifactNotFoundError when absent. */
  get(key: string): Promise<Readable>;
  /** The whole object in memory (for small objects: an image, a record); ArtifactNotFoundError when absent. */
  getBytes(key: string): Promise<Buffer>;
  /** The object's reference, or undefined when absent. */
  stat(key: string): Promise<ArtifactRef | undefined>;
  /**
   * The sha256 of the object's bytes as they are now (ArtifactNotFoundError when absent): where
   * the recorded digest can go stale, as on a filesystem, this reads the bytes.
   */
  sha256Of(key: string): Promise<string>;
  /** Every object whose key starts with prefix (S3 and the filesystem store list in key byte order). */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Puts whose durability is paid once for all of them, at commit (see ArtifactBatch). */
  batch(options?: BatchOptions): ArtifactBatch;
  /** Removes the object; absent objects are not an error. */
  delete(key: string): Promise<void>;
  /** The URI an ArtifactRef carries for key. */
  uriOf(key: string): string;
  /** The key of a URI inside this store; InvalidKeyError for a URI elsewhere. */
  keyOf(uri: string): string;
  /** Releases connections and timers. */
  close(): Promise<void>;
}

export interface BatchOptions {
  /**
   * false: the filesystem store writes no digest sidecar next to each object (half the files of a bulk write, and half
   * its time: measured on a dataset import); stat() hashes such an object on first use and records its digest then,
   * its media type guessed from the key. For many objects that are read rather than stat'ed (a dataset's images,
   * already checked against their digests). S3 keeps the digest in the object's metadata either way. Default true.
   */
  recordDigests?: boolean;
}

/**
 * Many puts made durable together: the filesystem store syncs them with one syncfs at commit where
 * a put fsyncs each object. Each object is still published whole or not at all, and never before
 * its bytes are durable. Before commit, an object may be published already (S3: at its put) or not
 * yet (filesystem: at commit); once commit resolves, every put that succeeded is published and
 * durable. So a writer publishes what refers to a batch's objects (a manifest) after its commit.
 */
export interface ArtifactBatch {
  /** As ArtifactStore.put; the reference is final, the object maybe not published yet. */
  put(key: string, body: ObjectBody, options?: PutOptions): Promise<ArtifactRef>;
  /** Waits for the puts in flight, then publishes the batch durably. The batch takes no more puts. */
  commit(): Promise<void>;
  /** Drops what is not published yet (the filesystem store: everything since the last commit). */
  abort(): Promise<void>;
}
