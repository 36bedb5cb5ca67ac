import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';
import type { ArtifactRef, ArtifactStore, PutOptions } from './types';

/** One line of a JSON-lines manifest: the parsed value, or why it could not be parsed. */
export type ManifestLine<T> =
  { lineNumber: number; ok: true; value: T } | { lineNumber: number; ok: false; error: string };

/** Streams records into a JSON-lines manifest (one JSON object per line, UTF-8). */
export function putJsonl(
  store: ArtifactStore,
  key: string,
  records: Iterable<unknown> | AsyncIterable<unknown>,
  options: PutOptions = {},
): Promise<ArtifactRef> {
  async function* lines() {
    for await (const record of records) yield Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
  }
  return store.put(key, Readable.from(lines()), { mediaType: 'application/x-ndjson', ...options });
}

/**
 * Reads a JSON-lines manifest line by line without loading it whole. Blank lines are skipped;
 * a malformed line is reported (line number and reason, never its content) and reading goes on.
 */
export async function* readJsonl<T = unknown>(store: ArtifactStore, key: string): AsyncIterable<ManifestLine<T>> {
  const lines = createInterface({ input: await store.get(key), crlfDelay: Infinity });
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber++;
    if (line.trim() === '') continue;
    try {
      const value = JSON.parse(line) as unknown;
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        yield { lineNumber, ok: false, error: 'not a JSON object' };
      } else {
        yield { lineNumber, ok: true, value: value as T };
      }
    } catch {
      yield { lineNumber, ok: false, error: 'invalid JSON' };
    }
  }
}

/** Reads a whole (small) object into memory. */
export function getBuffer(store: ArtifactStore, key: string): Promise<Buffer> {
  return store.getBytes(key);
}
