import { InvalidKeyError } from './errors';
import type { ArtifactStore } from './types';

/** Prefixes the stores use for their own bookkeeping (partial uploads, per-object metadata). */
export const RESERVED_PREFIXES = ['.tmp/', '.meta/'] as const;

/** Throws InvalidKeyError unless key is a clean relative POSIX path outside the reserved prefixes. */
export function validateKey(key: string): string {
  if (key.length === 0) throw new InvalidKeyError(key, 'empty');
  if (key.length > 1024) throw new InvalidKeyError(key.slice(0, 64), 'longer than 1024 characters');
  if (key.startsWith('/')) throw new InvalidKeyError(key, 'must be relative');
  if (key.endsWith('/')) throw new InvalidKeyError(key, 'must name an object, not a folder');
  if (/[\u0000-\u001f\u007f\\]/.test(key))
    throw new InvalidKeyError(key, 'control characters and backslashes are not allowed');
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new InvalidKeyError(key, 'empty, "." and ".." path segments are not allowed');
    }
  }
  if (RESERVED_PREFIXES.some((p) => key.startsWith(p))) throw new InvalidKeyError(key, 'reserved prefix');
  return key;
}

/** A store key from a store URI (InvalidKeyError for a URI outside the store), or a key as given. */
export function keyOf(store: ArtifactStore, uriOrKey: string): string {
  return uriOrKey.includes('://') ? store.keyOf(uriOrKey) : uriOrKey.replace(/^\/+/, '');
}

/** Media type from a key's extension, for objects put without one. */
export function guessMediaType(key: string): string {
  const extension = key.slice(key.lastIndexOf('.') + 1).toLowerCase();
  return MEDIA_TYPES[extension] ?? 'application/octet-stream';
}

const MEDIA_TYPES: Record<string, string> = {
  jsonl: 'application/x-ndjson',
  json: 'application/json',
  csv: 'text/csv',
  txt: 'text/plain',
  html: 'text/html',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  dcm: 'application/dicom',
  onnx: 'application/onnx',
  safetensors: 'application/octet-stream',
  tar: 'application/x-tar',
};
