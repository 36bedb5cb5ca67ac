import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
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

/** Files are hashed in pieces of up to this size, read into one buffer: no allocation per piece. */
const FILE_PIECE_BYTES = 1 << 20;

/** sha256 and size of a local file's bytes (ENOENT or EISDIR as fs reports them). */
export async function fileDigest(file: string): Promise<{ sha256: string; sizeBytes: number }> {
  const handle = await fsp.open(file, 'r');
  try {
    const hash = createHash('sha256');
    const piece = Buffer.allocUnsafe(Math.min(FILE_PIECE_BYTES, Math.max((await handle.stat()).size, 4096)));
    let sizeBytes = 0;
    for (let read; (read = (await handle.read(piece, 0, piece.length, null)).bytesRead) > 0;) {
      hash.update(piece.subarray(0, read));
      sizeBytes += read;
    }
    return { sha256: hash.digest('hex'), sizeBytes };
  } finally {
    await handle.close();
  }
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
