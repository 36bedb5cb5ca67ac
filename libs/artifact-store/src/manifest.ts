import { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { ArtifactRef, ArtifactStore, PutOptions } from './types';

/** One line of a JSON-lines manifest: the parsed value, or why it could not be parsed. */
export type ManifestLine<T> =
  { lineNumber: number; ok: true; value: T } | { lineNumber: number; ok: false; error: string };

/** Lines are gathered into pieces of about this many characters: one write each, not one per line. */
const PIECE_CHARS = 64 * 1024;

/** Streams records into a JSON-lines manifest (one JSON object per line, UTF-8). */
export function putJsonl(
  store: ArtifactStore,
  key: string,
  records: Iterable<unknown> | AsyncIterable<unknown>,
  options: PutOptions = {},
): Promise<ArtifactRef> {
  async function* pieces() {
    let piece = '';
    for await (const record of records) {
      piece += `${JSON.stringify(record)}\n`;
      if (piece.length >= PIECE_CHARS) {
        yield Buffer.from(piece, 'utf8');
        piece = '';
      }
    }
    if (piece) yield Buffer.from(piece, 'utf8');
  }
  return store.put(key, Readable.from(pieces()), { mediaType: 'application/x-ndjson', ...options });
}

/** Where readline ends a line: at "\r\n", "\n" or a lone "\r". */
const LINE_END = /\r\n|\n|\r/;

/**
 * The lines of a UTF-8 byte stream, split where readline splits them, a chunk's worth at a time
 * (readline's per-line events cost more than parsing the JSON of a manifest's lines).
 */
async function* textLines(bytes: AsyncIterable<Buffer>): AsyncIterable<string[]> {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  for await (const chunk of bytes) {
    const text = decoder.write(chunk);
    if (!/[\r\n]/.test(text)) {
      partial += text;
      continue;
    }
    // A "\r" at the end waits for the next chunk: it may be the first half of a "\r\n".
    const held = text.endsWith('\r') ? 1 : 0;
    const lines = (partial + text.slice(0, text.length - held)).split(LINE_END);
    partial = lines.pop()! + text.slice(text.length - held);
    yield lines;
  }
  const lines = (partial + decoder.end()).split(LINE_END);
  if (lines[lines.length - 1] === '') lines.pop(); // text after the last line end, if any, is a line
  yield lines;
}

/**
 * Reads a JSON-lines manifest line by line without loading it whole. Blank lines are skipped;
 * a malformed line is reported (line number and reason, never its content) and reading goes on.
 */
export async function* readJsonl<T = unknown>(store: ArtifactStore, key: string): AsyncIterable<ManifestLine<T>> {
  let lineNumber = 0;
  for await (const lines of textLines(await store.get(key))) {
    for (const line of lines) {
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
}

/** Reads a whole (small) object into memory. */
export function getBuffer(store: ArtifactStore, key: string): Promise<Buffer> {
  return store.getBytes(key);
}
