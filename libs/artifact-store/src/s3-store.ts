import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import * as Minio from 'minio';
import { expectPutDigest } from './digests';
import { ArtifactNotFoundError, InvalidKeyError, StoreUnavailableError } from './errors';
import { isReplayable, sha256Hex, streamSha256, toReadable } from './hashing';
import { guessMediaType, validateKey } from './keys';
import { DEFAULT_RETRY, describe, isTransient, withRetry, type RetryPolicy } from './retry';
import type {
  ArtifactBatch,
  ArtifactRef,
  ArtifactStore,
  BatchOptions,
  ObjectBody,
  ObjectInfo,
  PutOptions,
} from './types';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, empty or ending in "/". */
  prefix: string;
  endpoint: URL;
  accessKey: string;
  secretKey: string;
  region: string;
  /** Multipart part size: the most a streaming upload holds in memory at once. */
  partSizeBytes: number;
  retry?: RetryPolicy;
}

/** 16 MiB parts: bounded memory per upload, objects up to 10,000 parts (~156 GiB). */
export const DEFAULT_PART_SIZE_BYTES = 16 * 1024 * 1024;

const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NotFound', 'NoSuchObject']);

/**
 * S3 or MinIO through the minio client. Objects carry their sha256 as user metadata. S3 makes
 * an object visible only once its upload completes, so readers never see a partial object and
 * an interrupted upload leaves nothing under the key (its multipart upload is aborted).
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly rootUri: string;
  private readonly client: Minio.Client;
  private readonly retry: RetryPolicy;

  constructor(private readonly options: S3StoreOptions) {
    const { endpoint } = options;
    const useSSL = endpoint.protocol === 'https:';
    this.client = new Minio.Client({
      endPoint: endpoint.hostname,
      port: endpoint.port ? Number(endpoint.port) : useSSL ? 443 : 80,
      useSSL,
      accessKey: options.accessKey,
      secretKey: options.secretKey,
      region: options.region,
      pathStyle: true,
      partSize: options.partSizeBytes,
    });
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.rootUri = `s3://${options.bucket}${options.prefix ? `/${options.prefix.replace(/\/$/, '')}` : ''}`;
  }

  async check(): Promise<void> {
    const where = `s3://${this.options.bucket} at ${this.options.endpoint.origin}`;
    let exists: boolean;
    try {
      exists = await withRetry(`reach ${where}`, () => this.client.bucketExists(this.options.bucket), this.retry);
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error;
      throw new StoreUnavailableError(`cannot use ${where}: ${describe(error)}`, { cause: error });
    }
    if (!exists)
      throw new StoreUnavailableError(
        `bucket ${this.options.bucket} does not exist at ${this.options.endpoint.origin}`,
      );
  }

  /** Creates the bucket when missing (tests and single-node setups; clusters create it with a Job). */
  async ensureBucket(): Promise<void> {
    const exists = await withRetry('bucketExists', () => this.client.bucketExists(this.options.bucket), this.retry);
    if (!exists) await this.client.makeBucket(this.options.bucket, this.options.region);
  }

  async put(key: string, body: ObjectBody, options: PutOptions = {}): Promise<ArtifactRef> {
    validateKey(key);
    const upload = () => this.uploadAndPublish(key, body, options);
    if (isReplayable(body)) return withRetry(`put ${key}`, upload, this.retry);
    try {
      return await upload();
    } catch (error) {
      // A stream is consumed once, so there is nothing to retry with.
      if (isTransient(error))
        throw new StoreUnavailableError(`put ${key} failed: ${describe(error)}`, { cause: error });
      throw error;
    }
  }

  /**
   * A conditional PUT (`If-None-Match: *`): S3 (since 2024) and MinIO create the object only when
   * the key is free and answer 412 PreconditionFailed otherwise, so of racing writers exactly one
   * wins. s3rver, the loopback server of the tests, ignores the header on PUT and overwrites; the
   * stat() first keeps claims made one after another right on such a server (and saves an upload),
   * but only a server that honours the header closes the race. A request retried after a lost
   * answer may find its own first attempt there and report false.
   */
  async putIfAbsent(key: string, body: string | Uint8Array, options: PutOptions = {}): Promise<boolean> {
    const objectName = this.objectName(key);
    if (await this.stat(key)) return false;
    const bytes =
      typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const sha256 = sha256Hex(bytes);
    expectPutDigest(key, this.uriOf(key), options, sha256);
    const headers = { 'Content-Type': options.mediaType ?? guessMediaType(key), sha256, 'If-None-Match': '*' };
    try {
      await withRetry(
        `putIfAbsent ${key}`,
        () => this.client.putObject(this.options.bucket, objectName, bytes, bytes.length, headers),
        this.retry,
      );
      return true;
    } catch (error) {
      if ((error as { code?: string })?.code === 'PreconditionFailed') return false;
      throw error;
    }
  }

  async get(key: string): Promise<Readable> {
    const objectName = this.objectName(key);
    return withRetry(`get ${key}`, () => this.client.getObject(this.options.bucket, objectName), this.retry).catch(
      (error) => {
        throw this.translate(error, key);
      },
    );
  }

  async getBytes(key: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.get(key)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * S3 makes an object durable before it answers its PUT: a batch's puts are plain puts, published as they complete.
   * Each object's digest is in its metadata, so no option changes what a batch writes.
   */
  batch(_options?: BatchOptions): ArtifactBatch {
    const inFlight = new Set<Promise<unknown>>();
    let open = true;
    return {
      put: async (key, body, options) => {
        if (!open) throw new Error(`batch put ${key}: the batch was already committed or aborted`);
        const put = this.put(key, body, options);
        inFlight.add(put);
        try {
          return await put;
        } finally {
          inFlight.delete(put);
        }
      },
      commit: async () => {
        open = false;
        await Promise.allSettled([...inFlight]);
      },
      abort: async () => {
        open = false;
        await Promise.allSettled([...inFlight]);
      },
    };
  }

  async stat(key: string): Promise<ArtifactRef | undefined> {
    const objectName = this.objectName(key);
    try {
      const stat = await withRetry(
        `stat ${key}`,
        () => this.client.statObject(this.options.bucket, objectName),
        this.retry,
      );
      const meta = stat.metaData as Record<string, string>;
      let sha256 = meta['sha256'];
      if (!sha256) sha256 = await this.hashObject(key);
      return {
        uri: this.uriOf(key),
        sha256,
        sizeBytes: stat.size,
        mediaType: meta['content-type'] ?? guessMediaType(key),
      };
    } catch (error) {
      if (this.isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * The digest recorded at write time, as user metadata: S3 replaces an object whole, metadata
   * with it, so another tool's overwrite drops our sha256 (and stat() then hashes the bytes)
   * rather than leaving a stale one; there is no in-place edit as on a filesystem.
   */
  async sha256Of(key: string): Promise<string> {
    const ref = await this.stat(key);
    if (!ref) throw new ArtifactNotFoundError(key);
    return ref.sha256;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const stream = this.client.listObjectsV2(this.options.bucket, this.options.prefix + prefix, true);
    for await (const item of stream as AsyncIterable<Minio.BucketItem>) {
      if (!item.name) continue;
      const key = item.name.slice(this.options.prefix.length);
      if (key.startsWith('.tmp/')) continue;
      yield { key, uri: this.uriOf(key), sizeBytes: item.size, lastModified: item.lastModified ?? new Date(0) };
    }
  }

  async delete(key: string): Promise<void> {
    const objectName = this.objectName(key);
    await withRetry(`delete ${key}`, () => this.client.removeObject(this.options.bucket, objectName), this.retry);
  }

  uriOf(key: string): string {
    return `${this.rootUri}/${validateKey(key)}`;
  }

  keyOf(uri: string): string {
    if (!uri.startsWith(`${this.rootUri}/`)) throw new InvalidKeyError(uri, `not inside this store (${this.rootUri})`);
    return validateKey(uri.slice(this.rootUri.length + 1));
  }

  async close(): Promise<void> {}

  private objectName(key: string): string {
    return this.options.prefix + validateKey(key);
  }

  private async uploadAndPublish(key: string, body: ObjectBody, options: PutOptions): Promise<ArtifactRef> {
    const { bucket, partSizeBytes } = this.options;
    const objectName = this.objectName(key);
    const mediaType = options.mediaType ?? guessMediaType(key);
    const hash = createHash('sha256');
    const parts = partsOf(toReadable(body), partSizeBytes)[Symbol.asyncIterator]();
    let part = await parts.next();
    if (part.done || part.value.length < partSizeBytes) {
      // Small object (one short part): its sha256 is known before the upload, so one PUT publishes it.
      const bytes = part.done ? Buffer.alloc(0) : part.value;
      const sha256 = hash.update(bytes).digest('hex');
      expectPutDigest(key, this.uriOf(key), options, sha256);
      await this.client.putObject(bucket, objectName, bytes, bytes.length, { 'Content-Type': mediaType, sha256 });
      return { uri: this.uriOf(key), sha256, sizeBytes: bytes.length, mediaType };
    }

    // Large object: multipart upload (one part in memory) to a temporary key, then a
    // server-side copy publishes it under its key with the sha256 known only at the end.
    const tmpName = `${this.options.prefix}.tmp/${randomUUID()}`;
    const uploadId = await this.client.initiateNewMultipartUpload(bucket, tmpName, { 'Content-Type': mediaType });
    let completed = false;
    try {
      const etags: { part: number; etag: string }[] = [];
      let sizeBytes = 0;
      const uploadPart = async (part: Buffer) => {
        hash.update(part);
        sizeBytes += part.length;
        const partNumber = etags.length + 1;
        const { etag } = await this.client.uploadPart(
          { bucketName: bucket, objectName: tmpName, uploadID: uploadId, partNumber, headers: {} },
          part,
        );
        etags.push({ part: partNumber, etag });
      };
      for (; !part.done; part = await parts.next()) await uploadPart(part.value);
      const sha256 = hash.digest('hex');
      expectPutDigest(key, this.uriOf(key), options, sha256); // the finally below aborts the upload
      await this.client.completeMultipartUpload(bucket, tmpName, uploadId, etags);
      completed = true;
      await this.client.copyObject(
        new Minio.CopySourceOptions({ Bucket: bucket, Object: tmpName }),
        new Minio.CopyDestinationOptions({
          Bucket: bucket,
          Object: objectName,
          MetadataDirective: 'REPLACE',
          UserMetadata: { sha256 },
          Headers: { 'Content-Type': mediaType },
        }),
      );
      return { uri: this.uriOf(key), sha256, sizeBytes, mediaType };
    } finally {
      if (!completed) await this.client.abortMultipartUpload(bucket, tmpName, uploadId).catch(() => undefined);
      await this.client.removeObject(bucket, tmpName).catch(() => undefined);
    }
  }

  /** sha256 of an object written by another tool (no sha256 metadata). */
  private async hashObject(key: string): Promise<string> {
    return (await streamSha256(await this.get(key))).sha256;
  }

  private isNotFound(error: unknown): boolean {
    return NOT_FOUND_CODES.has((error as { code?: string })?.code ?? '');
  }

  private translate(error: unknown, key: string): unknown {
    return this.isNotFound(error) ? new ArtifactNotFoundError(key) : error;
  }
}

/**
 * Re-chunks a stream into parts of exactly partSize bytes (the last may be smaller), all in one
 * reused buffer: a part is valid only until the next one is requested, so an upload that sends
 * each part before asking for the next holds one part in memory, whatever the object's size.
 */
async function* partsOf(source: AsyncIterable<Buffer>, partSize: number): AsyncIterable<Buffer> {
  const part = Buffer.allocUnsafe(partSize);
  let filled = 0;
  for await (const chunk of source) {
    for (let offset = 0; offset < chunk.length;) {
      const copied = chunk.copy(part, filled, offset);
      offset += copied;
      filled += copied;
      if (filled === partSize) {
        yield part;
        filled = 0;
      }
    }
  }
  if (filled > 0) yield part.subarray(0, filled);
}
