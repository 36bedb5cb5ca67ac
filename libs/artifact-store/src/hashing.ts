import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ObjectBody } from './types';

/** Lower-case hex sha256 of bytes, or of a string's UTF-8 bytes: the digest every artifact, stage key and provenance field uses. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 and size of a byte stream, read to its end (never held in memory whole). */
export async function streamSha256(bytes: AsyncIterable<Uint8Array>): Promise<{ sha256: string; sizeBytes: number }> {
  const hash = createHash('sha256');
  let sizeBytes = 0;
  for await (const chunk of bytes) {
    hash.update(chunk);
    sizeBytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), sizeBytes };
}

/** Any accepted body as a byte stream (strings as UTF-8). */
export function toReadable(body: ObjectBody): Readable {
  if (typeof body === 'string') return Readable.from([Buffer.from(body, 'utf8')]);
  if (body instanceof Uint8Array) return Readable.from([Buffer.from(body.buffer, body.byteOffset, body.byteLength)]);
  if (body instanceof Readable) return body;
  return Readable.from(body);
}

/** True when the body can be read again (so a failed upload may be retried). */
export function isReplayable(body: ObjectBody): boolean {
  return typeof body === 'string' || body instanceof Uint8Array;
}
