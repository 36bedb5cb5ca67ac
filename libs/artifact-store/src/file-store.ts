import { randomUUID } from 'node:crypto';
import { closeSync, createReadStream, fstatSync, openSync, readFileSync, type Dirent } from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { expectPutDigest } from './digests';
import { ArtifactNotFoundError, InvalidKeyError, StoreUnavailableError } from './errors';
import { FileStoreBatch } from './file-batch';
import { sidecarOf, writeNewFile, type Digest, type Sidecar } from './file-writes';
import { fileDigest } from './hashing';
import { guessMediaType, validateKey } from './keys';
import type {
  ArtifactBatch,
  ArtifactRef,
  ArtifactStore,
  BatchOptions,
  ObjectBody,
  ObjectInfo,
  PutOptions,
} from './types';

/** Files up to this size are read with blocking calls (about 0.1 ms for 1 MiB from the page cache). */
const BLOCKING_READ_MAX_BYTES = 1 << 20;
/** A read stream's chunk: 1 MiB, not Node's 64 KiB, so a 12 MB dataset shard is read in 12 round trips through the thread pool, not 200. */
const STREAM_CHUNK_BYTES = 1 << 20;

/** A key that its URI spells as it is: no character a file URI encodes, no "." or ".." segment to resolve. */
const PLAIN_KEY = /^[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_-]+)*$/;

/**
 * The embedded default: objects are files under root. A put streams into `.tmp/`, is fsynced,
 * then renamed (putIfAbsent: hard-linked) into place, so readers never see a partial file. sha256 and media type live in a
 * sidecar under `.meta/`, published before the object itself. A batch writes the same temporary
 * files without fsync, and at commit syncs them all at once before renaming them into place.
 */
export class FileArtifactStore implements ArtifactStore {
  readonly rootUri: string;

  constructor(readonly root: string) {
    this.root = path.resolve(root);
    this.rootUri = pathToFileURL(this.root).href;
  }

  async check(): Promise<void> {
    try {
      await fsp.mkdir(path.join(this.root, '.tmp'), { recursive: true });
      const probe = path.join(this.root, '.tmp', `probe-${randomUUID()}`);
      await fsp.writeFile(probe, '');
      await fsp.rm(probe);
    } catch (error) {
      throw new StoreUnavailableError(`local store ${this.root} is not writable: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  async put(key: string, body: ObjectBody, options: PutOptions = {}): Promise<ArtifactRef> {
    const target = this.pathOf(key);
    const { tmp, ref } = await this.writeTemp(key, body, options);
    try {
      await this.writeSidecar(key, ref);
      await fsp.mkdir(path.dirname(target), { recursive: true });
      await fsp.rename(tmp, target);
    } catch (error) {
      await fsp.rm(tmp, { force: true });
      throw error;
    }
    return ref;
  }

  /**
   * rename(2) replaces what is at the target; link(2) fails with EEXIST instead, so the first
   * writer's object stays whole and every other writer, in any process, learns it lost. The
   * sidecar follows the object here (put() writes it first): a loser must not replace the winner's,
   * and until it lands stat() hashes the bytes.
   */
  async putIfAbsent(key: string, body: string | Uint8Array, options: PutOptions = {}): Promise<boolean> {
    const target = this.pathOf(key);
    const { tmp, ref } = await this.writeTemp(key, body, options);
    try {
      await fsp.mkdir(path.dirname(target), { recursive: true });
      await fsp.link(tmp, target);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      await fsp.rm(tmp, { force: true });
    }
    await this.writeSidecar(key, ref);
    return true;
  }

  async get(key: string): Promise<Readable> {
    const file = this.pathOf(key);
    // Open first so a missing object fails here, not later inside the consumer's pipeline.
    const handle = await fsp.open(file, 'r').catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ENOENT' || error.code === 'EISDIR' ? new ArtifactNotFoundError(key) : error;
    });
    // Linux opens a folder for reading; its reads fail later with EISDIR. A folder is no object.
    if ((await handle.stat()).isDirectory()) {
      await handle.close();
      throw new ArtifactNotFoundError(key);
    }
    return createReadStream('', { fd: handle, highWaterMark: STREAM_CHUNK_BYTES });
  }

  async getBytes(key: string): Promise<Buffer> {
    const file = this.pathOf(key);
    try {
      // A small file (an image, a manifest) is read with blocking calls: through the thread pool, open, stat, read
      // and close are each a round trip, which doubled the time of reading a dataset's images (measured). A large one
      // (weights, a shard) is read without blocking the event loop for long.
      const fd = openSync(file, 'r');
      try {
        if (fstatSync(fd).size <= BLOCKING_READ_MAX_BYTES) return readFileSync(fd);
      } finally {
        closeSync(fd);
      }
      return await fsp.readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw code === 'ENOENT' || code === 'EISDIR' ? new ArtifactNotFoundError(key) : error;
    }
  }

  batch(options: BatchOptions = {}): ArtifactBatch {
    return new FileStoreBatch(options, {
      root: this.root,
      pathOf: (key) => this.pathOf(key),
      sidecarPath: (key) => this.sidecarPath(key),
      refOf: (key, digest, options) => this.refOf(key, digest, options),
    });
  }

  async stat(key: string): Promise<ArtifactRef | undefined> {
    const file = this.pathOf(key);
    const stats = await fsp.stat(file).catch(() => undefined);
    if (!stats?.isFile()) return undefined;
    const sidecar = await this.readSidecar(key);
    if (sidecar && sidecar.sizeBytes === stats.size) return { uri: this.uriOf(key), ...sidecar };
    // Written by another tool (or a stale sidecar): hash it now and remember.
    const { sha256, sizeBytes } = await fileDigest(file);
    const ref = { uri: this.uriOf(key), sha256, sizeBytes, mediaType: sidecar?.mediaType ?? guessMediaType(key) };
    await this.writeSidecar(key, ref);
    return ref;
  }

  /**
   * Always read from the bytes, never from the sidecar: a file can be rewritten in place behind
   * the store's back, and a sidecar whose size still matches would then vouch for the old bytes.
   */
  async sha256Of(key: string): Promise<string> {
    try {
      return (await fileDigest(this.pathOf(key))).sha256;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw code === 'ENOENT' || code === 'EISDIR' ? new ArtifactNotFoundError(key) : error;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const slash = prefix.lastIndexOf('/');
    const startDir = slash < 0 ? '' : prefix.slice(0, slash);
    for await (const key of this.walk(startDir)) {
      if (!key.startsWith(prefix)) continue;
      const stats = await fsp.stat(path.join(this.root, key)).catch(() => undefined);
      if (stats) yield { key, uri: this.uriOf(key), sizeBytes: stats.size, lastModified: stats.mtime };
    }
  }

  async delete(key: string): Promise<void> {
    await fsp.rm(this.pathOf(key), { force: true });
    await fsp.rm(this.sidecarPath(key), { force: true });
  }

  uriOf(key: string): string {
    return `${this.rootUri}/${validateKey(key).split('/').map(encodeURIComponent).join('/')}`;
  }

  keyOf(uri: string): string {
    if (!uri.startsWith(`${this.rootUri}/`)) throw new InvalidKeyError(uri, `not inside this store (${this.rootUri})`);
    // What uriOf writes for a plain key (a manifest's image URIs): the key itself, nothing to decode or resolve.
    const rest = uri.slice(this.rootUri.length + 1);
    if (PLAIN_KEY.test(rest)) return validateKey(rest);
    return validateKey(path.relative(this.root, fileURLToPath(uri)).split(path.sep).join('/'));
  }

  async close(): Promise<void> {}

  /**
   * Writes body into a fresh file under `.tmp/`, fsynced before close (a crash after the rename or
   * link cannot leave a truncated object), with the reference it will have at key.
   */
  private async writeTemp(
    key: string,
    body: ObjectBody,
    options: PutOptions,
  ): Promise<{ tmp: string; ref: ArtifactRef }> {
    await fsp.mkdir(path.join(this.root, '.tmp'), { recursive: true });
    const tmp = path.join(this.root, '.tmp', randomUUID());
    try {
      return { tmp, ref: this.refOf(key, await writeNewFile(tmp, body, true), options) };
    } catch (error) {
      await fsp.rm(tmp, { force: true });
      throw error;
    }
  }

  /** The reference of bytes written for key; every put (batch puts too) checks `options.sha256` here, before publishing. */
  private refOf(key: string, digest: Digest, options: PutOptions): ArtifactRef {
    const uri = this.uriOf(key);
    expectPutDigest(key, uri, options, digest.sha256);
    return { uri, ...digest, mediaType: options.mediaType ?? guessMediaType(key) };
  }

  private pathOf(key: string): string {
    return path.join(this.root, ...validateKey(key).split('/'));
  }

  private sidecarPath(key: string): string {
    return path.join(this.root, '.meta', ...validateKey(key).split('/')) + '.json';
  }

  private async readSidecar(key: string): Promise<Sidecar | undefined> {
    const text = await fsp.readFile(this.sidecarPath(key), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as Sidecar;
    } catch {
      return undefined;
    }
  }

  private async writeSidecar(key: string, ref: ArtifactRef): Promise<void> {
    const target = this.sidecarPath(key);
    const tmp = path.join(this.root, '.tmp', `${randomUUID()}.json`);
    await fsp.writeFile(tmp, JSON.stringify(sidecarOf(ref)));
    await fsp.mkdir(path.dirname(target), { recursive: true });
    await fsp.rename(tmp, target);
  }

  /** Keys of every file under dir (relative to root) in key order, skipping the store's bookkeeping. */
  private async *walk(dir: string): AsyncIterable<string> {
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(path.join(this.root, dir), { withFileTypes: true });
    } catch {
      return;
    }
    // Sort folders as "name/" so the walk yields keys in plain byte order, as S3 lists them.
    const sortName = (e: Dirent) => (e.isDirectory() ? `${e.name}/` : e.name);
    entries.sort((a, b) => (sortName(a) < sortName(b) ? -1 : sortName(a) > sortName(b) ? 1 : 0));
    for (const entry of entries) {
      const key = dir ? `${dir}/${entry.name}` : entry.name;
      if (!dir && (entry.name === '.tmp' || entry.name === '.meta')) continue;
      if (entry.isDirectory()) yield* this.walk(key);
      else if (entry.isFile()) yield key;
    }
  }
}
