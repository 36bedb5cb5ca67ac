import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArtifactNotFoundError, DigestMismatchError, MalformedDigestError } from './errors';
import { fileDigest, sha256Hex } from './hashing';
import { keyOf } from './keys';
import type { ArtifactStore, DigestClaim, PutOptions } from './types';

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * Code-point order, which is UTF-8 byte order (as S3 lists keys): the same on every machine, locale
 * and language. Not localeCompare, and not JavaScript's `<`, which compares UTF-16 code units and
 * puts characters beyond U+FFFF before U+E000-U+FFFF.
 */
const byCodePoint = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * The digest of a folder (a model, an encoder bundle): sha256 of one line `<relative path>\t<sha256>\n`
 * per regular file, in code-point order of the `/`-separated paths. Renaming, adding, removing or
 * editing any file changes it, and nothing else does (not timestamps, not where the folder is).
 */
export function treeDigest(files: Iterable<{ path: string; sha256: string }>): string {
  const lines = [...files].sort((a, b) => byCodePoint(a.path, b.path)).map((f) => `${f.path}\t${f.sha256}\n`);
  return sha256Hex(lines.join(''));
}

/** sha256 of a value's JSON with object keys sorted: equal for equal requests. */
export function canonicalDigest(value: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v as object)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  return sha256Hex(JSON.stringify(canonical(value)));
}

/** Every regular file under dir, as `/`-separated relative paths in code-point order. */
export function listLocalFiles(dir: string): string[] {
  const files: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile()) files.push(child);
    }
  };
  walk('');
  return files.sort(byCodePoint);
}

/** sha256 of a local file's bytes, read a piece at a time. */
export async function fileSha256(file: string): Promise<string> {
  return (await fileDigest(file)).sha256;
}

/** treeDigest of a local folder: of all its files, or of `files` (relative paths) in it; `digestOf` may cache. */
export async function localTreeDigest(
  dir: string,
  files: readonly string[] = listLocalFiles(dir),
  digestOf: (file: string) => Promise<string> = fileSha256,
): Promise<string> {
  const entries: { path: string; sha256: string }[] = [];
  for (const rel of files) entries.push({ path: rel, sha256: await digestOf(path.join(dir, rel)) });
  return treeDigest(entries);
}

/**
 * The digest of what a store holds at key: the object's sha256, or, when there is no object there
 * (or `folder` says it names one), the treeDigest of the objects under `key/`. ArtifactNotFoundError
 * when there is neither.
 */
export async function storedDigest(store: ArtifactStore, key: string, folder = false): Promise<string> {
  if (!folder) {
    try {
      return await store.sha256Of(key);
    } catch (error) {
      if (!(error instanceof ArtifactNotFoundError)) throw error;
    }
  }
  const prefix = `${key}/`;
  const files: { path: string; sha256: string }[] = [];
  for await (const object of store.list(prefix))
    files.push({ path: object.key.slice(prefix.length), sha256: await store.sha256Of(object.key) });
  if (files.length === 0) throw new ArtifactNotFoundError(key);
  return treeDigest(files);
}

/**
 * ref's sha256, or undefined when it claims none (a bare URI); MalformedDigestError when it is not
 * a sha256, naming `<field>.sha256`, or digestField where the request keeps it elsewhere.
 */
export function claimedDigest(ref: DigestClaim, field: string, digestField?: string): string | undefined {
  if (ref.sha256 === '') return undefined;
  if (!SHA256_HEX.test(ref.sha256)) throw new MalformedDigestError(field, digestField);
  return ref.sha256;
}

/** Throws DigestMismatchError, naming field and URI, unless `found` is the digest ref claims (if it claims one). */
export function expectDigest(ref: DigestClaim, field: string, found: string): void {
  const expected = claimedDigest(ref, field);
  if (expected !== undefined && found !== expected) throw new DigestMismatchError(field, ref.uri, expected, found);
}

/** Throws DigestMismatchError, naming the key, when a put's bytes hash to `found` and its options name other ones. */
export function expectPutDigest(key: string, uri: string, options: PutOptions, found: string): void {
  if (options.sha256 !== undefined && found !== options.sha256)
    throw new DigestMismatchError(key, uri, options.sha256, found);
}

/**
 * Checks, before a service reads it, that the store holds at ref.uri the bytes ref.sha256 names:
 * an object, or a folder (a URI ending in "/", or one naming no object) by its treeDigest. `key`
 * is where the caller resolved the URI to; by default the store's key of a URI, or the URI itself
 * when it has no scheme (a bare key). The digests come from store.sha256Of: the bytes themselves on
 * a filesystem, the digest recorded at write on S3.
 */
export async function verifyArtifactRef(
  store: ArtifactStore,
  ref: DigestClaim,
  field: string,
  key?: string,
): Promise<void> {
  if (claimedDigest(ref, field) === undefined) return;
  const trimmed = ref.uri.replace(/\/+$/, '');
  const location = key ?? keyOf(store, trimmed);
  expectDigest(ref, field, await storedDigest(store, location, ref.uri.endsWith('/')));
}
