import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { sha256Hex, type ArtifactStore } from '@medsyn/artifact-store';
import { ModelLoadError } from './text-to-image';

/**
 * Copies a model stored under `prefix` in the artifact store (the export layout, one object per
 * file) into `cacheDir`, and returns the local directory onnxruntime loads from. Files already
 * there with the right size are kept, so a restart does not download gigabytes again.
 */
export async function fetchModelDirectory(store: ArtifactStore, prefix: string, cacheDir: string): Promise<string> {
  const base = prefix.endsWith('/') ? prefix : `${prefix}/`;
  const target = path.join(cacheDir, sha256Hex(`${store.rootUri}\n${base}`).slice(0, 16));
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

/** Every slot of a ModelCache holds a model in use: nothing can be evicted for another. */
export class ModelCacheFullError extends Error {
  override name = 'ModelCacheFullError';
}

interface CacheEntry<T> {
  loading: Promise<T>;
  users: number;
  lastUsed: number;
}

/**
 * At most `maxModels` models loaded at once, keyed by URI. Acquiring a model that is not loaded
 * evicts the least recently used one that no caller holds (its `evict` closes it and removes its
 * files); when every loaded model is held, acquiring another fails with ModelCacheFullError.
 */
export class ModelCache<T> {
  private readonly entries = new Map<string, CacheEntry<T>>();
  private clock = 0;

  constructor(
    private readonly options: {
      maxModels: number;
      load: (key: string) => Promise<T>;
      evict: (key: string, model: T) => Promise<void>;
    },
  ) {}

  /** The model for `key`, held until `release` is called. */
  async acquire(key: string): Promise<{ model: T; release: () => void }> {
    let entry = this.entries.get(key);
    if (!entry) {
      // Choosing the victim and taking its slot happen in one synchronous step, so concurrent
      // acquires never load more than maxModels; the victim is closed before the new model loads.
      const victim = this.entries.size >= this.options.maxModels ? this.takeIdleSlot() : undefined;
      const loading = (victim ?? Promise.resolve()).then(() => this.options.load(key));
      const created: CacheEntry<T> = { loading, users: 0, lastUsed: 0 };
      entry = created;
      this.entries.set(key, created);
      loading.catch(() => {
        if (this.entries.get(key) === created) this.entries.delete(key);
      });
    }
    entry.users++;
    entry.lastUsed = ++this.clock;
    const held = entry;
    let model: T;
    try {
      model = await held.loading;
    } catch (error) {
      held.users--;
      throw error;
    }
    let released = false;
    return {
      model,
      release: () => {
        if (released) return;
        released = true;
        held.users--;
        held.lastUsed = ++this.clock;
      },
    };
  }

  /** URIs loaded or loading now, least recently used first. */
  keys(): string[] {
    return [...this.entries.entries()].sort((a, b) => a[1].lastUsed - b[1].lastUsed).map(([key]) => key);
  }

  private takeIdleSlot(): Promise<void> {
    const idle = [...this.entries.entries()]
      .filter(([, e]) => e.users === 0)
      .sort((a, b) => a[1].lastUsed - b[1].lastUsed)[0];
    if (!idle) throw new ModelCacheFullError(`all ${this.options.maxModels} cached models are in use`);
    const [key, entry] = idle;
    this.entries.delete(key);
    return entry.loading.then(
      (model) => this.options.evict(key, model),
      () => undefined,
    );
  }
}
