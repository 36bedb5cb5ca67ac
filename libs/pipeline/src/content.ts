import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileSha256, localTreeDigest, sha256Hex } from '@medsyn/artifact-store';

/** A stage's key: the sha256 of its inputs' JSON, which name the content (digests) of every file it reads. */
export const stageKey = (inputs: unknown): string => sha256Hex(JSON.stringify(inputs));

/**
 * Digests of local files and folders, streamed (a model's weights never sit in memory whole).
 * Within one run a file is hashed once: the cache holds by path, size and mtime, so a file edited
 * in place between two runs is hashed again, and its new digest changes the stage key.
 */
export class ContentHasher {
  private readonly cache = new Map<string, { size: number; mtimeMs: number; digest: string }>();

  /** sha256 of one file's bytes. */
  async file(file: string): Promise<string> {
    const stats = await fs.promises.stat(file);
    const hit = this.cache.get(file);
    if (hit && hit.size === stats.size && hit.mtimeMs === stats.mtimeMs) return hit.digest;
    const digest = await fileSha256(file);
    this.cache.set(file, { size: stats.size, mtimeMs: stats.mtimeMs, digest });
    return digest;
  }

  /** The folder's treeDigest (@medsyn/artifact-store, as the services check it): of all its files, or of `files` in it. */
  tree(dir: string, files?: readonly string[]): Promise<string> {
    return localTreeDigest(dir, files, (file) => this.file(file));
  }
}

/** The records of a JSONL reports file; lines that do not parse are left out (the anonymizer lists them in its errors.jsonl). */
export function reportRecords(bytes: Buffer): Record<string, unknown>[] {
  return bytes
    .toString('utf8')
    .split('\n')
    .flatMap((line) => {
      try {
        return line.trim() ? [JSON.parse(line) as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
}

/** Each record's image as the real-pairs stage reads it: a local file resolved against the reports' folder. */
export function localImages(
  records: readonly Record<string, unknown>[],
  reportsDir: string,
  idField: string,
  imageField: string,
): { id: string; file: string }[] {
  return records.flatMap((record) => {
    const image = record[imageField];
    return typeof image === 'string' && image
      ? [{ id: String(record[idField] ?? ''), file: path.resolve(reportsDir, image) }]
      : [];
  });
}

/** sha256 over every image's id, path and content digest; a missing file counts as such (the stage then fails naming it). */
export async function imagesDigest(
  hasher: ContentHasher,
  images: readonly { id: string; file: string }[],
): Promise<string> {
  const lines: string[] = [];
  for (const { id, file } of images)
    lines.push(`${id}\t${file}\t${fs.existsSync(file) ? await hasher.file(file) : 'missing'}\n`);
  return sha256Hex(lines.join(''));
}
