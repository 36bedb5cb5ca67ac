import * as ort from 'onnxruntime-node';
import { PretrainingConfigError } from '@medsyn/config';
import { getBuffer, type ArtifactStore } from '@medsyn/artifact-store';
import {
  PairManifestError,
  readPairManifests,
  type LoadedPairs,
  type PairManifestList,
  type PairRecord,
  type SkippedRecord,
} from '@medsyn/dataset';
import type { WordPieceTokenizer } from '@medsyn/wordpiece';
import { seededShuffle } from '@medsyn/random';
import { ImageBatchWorker } from './batch-worker';
import { ImageBatcher, type DataPosition, type ImageBatch, type ImageInputOptions } from './batches';
import { WORD_MASK_INPUT } from './model';

export { epochOrder, type DataPosition, type ImageInputOptions } from './batches';
export { liveImageBatchWorkers } from './batch-worker';

/**
 * Reads the pair manifests of data.real_pairs and data.synthetic_pairs (the format and what is
 * skipped: `readPairManifests` of @medsyn/dataset); a manifest that is missing or outside the
 * store is a configuration error naming its field.
 */
export function loadPairManifests(
  store: ArtifactStore,
  manifests: { real: string[]; synthetic: string[] },
): Promise<LoadedPairs> {
  return readManifests(store, [
    { source: 'real', manifests: manifests.real, field: (i) => `data.real_pairs[${i}]` },
    { source: 'synthetic', manifests: manifests.synthetic, field: (i) => `data.synthetic_pairs[${i}]` },
  ]);
}

/** The held-out pairs of data.retrieval_pairs (read as real pairs), numbered after the `after` training records. */
export async function loadRetrievalPairs(store: ArtifactStore, manifest: string, after: number): Promise<LoadedPairs> {
  const loaded = await readManifests(store, [
    { source: 'real', manifests: [manifest], field: () => 'data.retrieval_pairs' },
  ]);
  return { ...loaded, records: loaded.records.map((r) => ({ ...r, index: after + r.index })) };
}

async function readManifests(store: ArtifactStore, lists: PairManifestList[]): Promise<LoadedPairs> {
  try {
    return await readPairManifests(store, lists);
  } catch (error) {
    if (error instanceof PairManifestError) throw new PretrainingConfigError(error.field, error.problem);
    throw error;
  }
}

/** A seeded hold-out: the same records are validation in every run with this seed. */
export function splitPairs(
  records: PairRecord[],
  fraction: number,
  seed: number,
): { train: PairRecord[]; validation: PairRecord[] } {
  const shuffled = seededShuffle(records, seed, 1);
  const count = Math.floor(records.length * fraction);
  const held = new Set(shuffled.slice(0, count).map((r) => r.index));
  return { train: records.filter((r) => !held.has(r.index)), validation: records.filter((r) => held.has(r.index)) };
}

/**
 * Training pairs without the held-out ones: a pair is left out when it shares a record id (the
 * same report, another image of it) or an image with a held-out pair, so that no arm trains on a
 * held-out report or image.
 */
export function withoutHeldOut(records: PairRecord[], heldOut: PairRecord[]): { train: PairRecord[]; left: number } {
  const ids = new Set(heldOut.flatMap((r) => (r.id ? [r.id] : [])));
  const images = new Set(heldOut.map((r) => r.imageKey));
  const train = records.filter((r) => !(r.id && ids.has(r.id)) && !images.has(r.imageKey));
  return { train, left: records.length - train.length };
}

/** Token ids, mask and word mask of every report, computed once. */
export interface TokenizedReports {
  length: number;
  ids: Map<number, Int32Array>;
  mask: Map<number, Uint8Array>;
}

/** Tokenises every record's report; a report with no word piece is skipped and counted. */
export async function tokenizeRecords(
  tokenizer: WordPieceTokenizer,
  records: PairRecord[],
  skipped: SkippedRecord[],
): Promise<{ kept: PairRecord[]; tokens: TokenizedReports }> {
  const tokens: TokenizedReports = { length: tokenizer.maxLength, ids: new Map(), mask: new Map() };
  const kept: PairRecord[] = [];
  const L = tokenizer.maxLength;
  for (let start = 0; start < records.length; start += 256) {
    const chunk = records.slice(start, start + 256);
    const encoded = await tokenizer.encodeBatch(chunk.map((r) => r.report));
    chunk.forEach((record, row) => {
      const ids = Int32Array.from(encoded.inputIds.subarray(row * L, (row + 1) * L), Number);
      const mask = Uint8Array.from(encoded.attentionMask.subarray(row * L, (row + 1) * L), Number);
      // [CLS] + at least one piece + [SEP].
      if (mask.reduce((a, b) => a + b, 0) < 3) {
        skipped.push({ manifest: record.manifest, lineNumber: record.lineNumber, reason: 'report has no word pieces' });
        return;
      }
      tokens.ids.set(record.index, ids);
      tokens.mask.set(record.index, mask);
      kept.push(record);
    });
  }
  return { kept, tokens };
}

export interface LoadedBatch {
  feeds: Record<string, ort.Tensor>;
  /** Record indices in the batch, in order. */
  records: number[];
  /** Position after this batch. */
  next: DataPosition;
  /** Records that failed to decode while filling it. */
  skipped: SkippedRecord[];
}

export interface BatchLoaderOptions {
  store: ArtifactStore;
  train: PairRecord[];
  tokens: TokenizedReports;
  image: ImageInputOptions;
  batchSize: number;
  syntheticRatio: number;
  seed: number;
  augment: boolean;
  /** Ids that are not words ([CLS]; run.ts says why [SEP] is one). */
  specialIds: number[];
  /** Decoded images kept in memory up to this many bytes (default 256 MiB). */
  cacheBytes?: number;
}

/**
 * Turns the training pairs into batches: the images from an ImageBatcher (epoch order from
 * (seed, epoch), decoding and augmentation seeded by position, so any position replays exactly),
 * the reports' token ids and masks from the tokenised reports.
 */
export class PairBatchLoader {
  private readonly images: ImageBatcher;

  constructor(readonly options: BatchLoaderOptions) {
    this.images = new ImageBatcher({ ...options, read: (key) => getBuffer(options.store, key) });
  }

  order(epoch: number): PairRecord[] {
    return this.images.order(epoch);
  }

  /** Full batches an epoch yields at most (fewer when images fail to decode). */
  stepsPerEpoch(): number {
    return this.images.stepsPerEpoch();
  }

  /** The batch starting at `position`, or the start of the next epoch when this one has too few records left. */
  async load(position: DataPosition): Promise<LoadedBatch> {
    return this.withReports(await this.images.load(position));
  }

  /** The model's inputs for a batch of images filled here or by a batch worker. */
  withReports(batch: ImageBatch): LoadedBatch {
    const { batchSize, image, tokens, specialIds } = this.options;
    const L = tokens.length;
    const ids = new BigInt64Array(batchSize * L);
    const mask = new BigInt64Array(batchSize * L);
    const words = new Float32Array(batchSize * L);
    batch.records.forEach((index, row) => {
      const recordIds = tokens.ids.get(index)!;
      const recordMask = tokens.mask.get(index)!;
      for (let t = 0; t < L; t++) {
        ids[row * L + t] = BigInt(recordIds[t]);
        mask[row * L + t] = BigInt(recordMask[t]);
        words[row * L + t] = recordMask[t] === 1 && !specialIds.includes(recordIds[t]) ? 1 : 0;
      }
    });
    return {
      feeds: {
        pixel_values: new ort.Tensor('float32', batch.pixels, [batchSize, image.channels, image.size, image.size]),
        input_ids: new ort.Tensor('int64', ids, [batchSize, L]),
        attention_mask: new ort.Tensor('int64', mask, [batchSize, L]),
        [WORD_MASK_INPUT]: new ort.Tensor('float32', words, [batchSize, L]),
      },
      records: batch.records,
      next: batch.next,
      skipped: batch.skipped,
    };
  }
}

/** Batches in order from a start position, loaded ahead of the trainer; close() when done. */
export interface BatchSource {
  next(): Promise<LoadedBatch>;
  close(): Promise<void>;
}

/**
 * Keeps up to `depth` batches loading ahead of the trainer on the training thread: store reads
 * and decoding proceed whenever that thread is free. onnxruntime-node's session.run holds it for
 * the whole step (measured: one 5 ms timer tick during a 3.1 s run), so decoding overlaps the
 * step's compute only where it waits on I/O; WorkerPrefetcher overlaps it fully.
 */
export class Prefetcher implements BatchSource {
  private queue: Promise<LoadedBatch>[] = [];
  private position: DataPosition;

  constructor(
    private readonly loader: PairBatchLoader,
    start: DataPosition,
    private readonly depth = 2,
  ) {
    this.position = start;
  }

  /** The next batch; starts loading the ones after it. */
  async next(): Promise<LoadedBatch> {
    this.fill();
    const batch = await this.queue.shift()!;
    this.fill();
    return batch;
  }

  /** Drops the batches loaded ahead; a load in flight finishes on its own and holds nothing open. */
  async close(): Promise<void> {
    this.queue = [];
  }

  private fill(): void {
    while (this.queue.length < this.depth) {
      const previous = this.queue[this.queue.length - 1];
      const start = previous ? previous.then((b) => b.next) : Promise.resolve(this.position);
      const loading = start.then((p) => this.loader.load(p));
      // A failure surfaces when its batch is asked for, not as an unhandled rejection.
      loading.catch(() => undefined);
      this.queue.push(loading);
    }
  }
}

/**
 * The same batches as Prefetcher (bit for bit: the images come from the same ImageBatcher code
 * and seeds), with reading, decoding and augmentation on a worker thread that runs while
 * onnxruntime computes the step; at most `depth` batches wait filled. Only the token ids, a copy
 * per batch, are laid out on the training thread.
 */
export class WorkerPrefetcher implements BatchSource {
  private readonly worker: ImageBatchWorker;

  constructor(
    private readonly loader: PairBatchLoader,
    start: DataPosition,
    depth = 2,
  ) {
    const { store, train, image, batchSize, syntheticRatio, seed, augment, cacheBytes } = loader.options;
    this.worker = new ImageBatchWorker({
      store,
      train,
      image,
      batchSize,
      syntheticRatio,
      seed,
      augment,
      ...(cacheBytes ? { cacheBytes } : {}),
      start,
      depth,
    });
  }

  /** Batches filled by the worker and not yet taken (at most `depth`). */
  get buffered(): number {
    return this.worker.buffered;
  }

  async next(): Promise<LoadedBatch> {
    return this.loader.withReports(await this.worker.next());
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}
