import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline as streamPipeline } from 'node:stream/promises';
import type { ArtifactStore } from '@medsyn/artifact-store';
import { ModelLoadError } from './pipeline';

/**
 * Copies a model stored under `prefix` in the artifact store (the export layout, one object per
 * file) into `cacheDir`, and returns the local directory onnxruntime loads from. Files already
 * there with the right size are kept, so a restart does not download gigabytes again.
 */
export async function fetchModelDirectory(store: ArtifactStore, prefix: string, cacheDir: string): Promise<string> {
  const base = prefix.endsWith('/') ? prefix : `${prefix}/`;
  const target = path.join(cacheDir, createHash('sha256').update(`${store.rootUri}\n${base}`).digest('hex').slice(0, 16));
  let files = 0;
  for await (const object of store.list(base)) {
    const relative = object.key.slice(base.length);
    if (relative.split('/').some((part) => part === '..' || part === '')) continue;
    files++;
    const file = path.join(target, relative);
    if (fs.existsSync(file) && fs.statSync(file).size === object.sizeBytes) continue;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const partial = `${file}.partial`;
    await streamPipeline(await store.get(object.key), fs.createWriteStream(partial));
    fs.renameSync(partial, file);
  }
  if (files === 0) throw new ModelLoadError(`no model files under ${base} in the artifact store`);
  return target;
}

/** The store prefix (ending in "/") of a folder URI such as `s3://medsyn/models/synthesizer/`. */
export function storePrefixOf(store: ArtifactStore, uri: string): string {
  return `${store.keyOf(uri.replace(/\/+$/, ''))}/`;
}
