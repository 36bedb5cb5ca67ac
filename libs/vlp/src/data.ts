import { posix } from 'node:path';
import * as ort from 'onnxruntime-node';
import { ArtifactNotFoundError, InvalidKeyError, getBuffer, readJsonl, type ArtifactStore } from '@medsyn/artifact-store';
import { augmentRadiograph, centerCropSquare, decodeImage, normalizeInto, resize, seededRandom, type GrayImage } from '@medsyn/imaging';
import type { WordPieceTokenizer } from '@medsyn/wordpiece';
import { PretrainingConfigError } from './config';
import { WORD_MASK_INPUT } from './model';

/** One image-report pair of a manifest line `{"image": uri-or-key, "report": text}`. */
export interface PairRecord {
  /** Position in the run's list of pairs (stable: manifests in config order, lines in file order). */
  index: number;
  source: 'real' | 'synthetic';
  imageKey: string;
  report: string;
  /** Where it came from, for counting skipped records without naming their content. */
  manifest: string;
  lineNumber: number;
}

/** A record left out, and why; never the record's content (reports are PHI-adjacent). */
export interface SkippedRecord {
  manifest: string;
  lineNumber: number;
  reason: string;
}

export interface LoadedPairs {
  records: PairRecord[];
  skipped: SkippedRecord[];
  /** The manifests' URIs and sha256 (lineage). */
  inputs: { uri: string; sha256: string }[];
}

/** A store key from a store URI, or a key as given. */
export function keyOf(store: ArtifactStore, uriOrKey: string): string {
  return uriOrKey.includes('://') ? store.keyOf(uriOrKey) : uriOrKey.replace(/^\/+/, '');
}

const IMAGE_FIELDS = ['image', 'image_uri', 'image_key', 'path'];
const TEXT_FIELDS = ['report', 'text', 'prompt'];

/**
 * Reads the pair manifests (JSONL). Image references (`image`, `image_uri`) are store URIs, or
 * keys relative to the manifest's folder; the text is `report` (or `text`, `prompt`: the
 * synthesizer's manifests carry the prompt). Malformed lines, lines without an image or a
 * report, and images the synthesizer's quality gate rejected (`accepted: false`) are skipped and
 * counted; a manifest that is missing or outside the store is a configuration error naming its
 * field.
 */
export async function loadPairManifests(store: ArtifactStore, manifests: { real: string[]; synthetic: string[] }): Promise<LoadedPairs> {
  const records: PairRecord[] = [];
  const skipped: SkippedRecord[] = [];
  const inputs: { uri: string; sha256: string }[] = [];
  for (const [source, list, field] of [
    ['real', manifests.real, 'data.real_pairs'],
    ['synthetic', manifests.synthetic, 'data.synthetic_pairs'],
  ] as const) {
    for (const [i, uri] of list.entries()) {
      let key: string;
      try {
        key = keyOf(store, uri);
      } catch (error) {
        if (error instanceof InvalidKeyError) throw new PretrainingConfigError(`${field}[${i}]`, `${uri} is not in the artifact store (${store.rootUri})`);
        throw error;
      }
      const ref = await store.stat(key);
      if (!ref) throw new PretrainingConfigError(`${field}[${i}]`, `manifest ${uri} not found`);
      inputs.push({ uri: ref.uri, sha256: ref.sha256 });
      const folder = posix.dirname(key);
      for await (const line of readJsonl<Record<string, unknown>>(store, key)) {
        const skip = (reason: string) => skipped.push({ manifest: uri, lineNumber: line.lineNumber, reason });
        if (!line.ok) {
          skip(line.error);
          continue;
        }
        const image = IMAGE_FIELDS.map((f) => line.value[f]).find((v) => typeof v === 'string' && v !== '') as string | undefined;
        const report = TEXT_FIELDS.map((f) => line.value[f]).find((v) => typeof v === 'string' && v.trim() !== '') as string | undefined;
        if (!image) skip('no image reference');
        else if (!report) skip('no report text');
        else if (line.value.accepted === false) skip('image rejected by the quality gate');
        else {
          let imageKey: string;
          try {
            imageKey = image.includes('://') ? store.keyOf(image) : posix.normalize(folder === '.' ? image : posix.join(folder, image));
          } catch {
            skip('image outside the artifact store');
            continue;
          }
          records.push({ index: records.length, source, imageKey, report, manifest: uri, lineNumber: line.lineNumber });
        }
      }
    }
  }
  return { records, skipped, inputs };
}

/** Fisher-Yates with a seeded generator: the same (seed, salt) gives the same order. */
export function seededShuffle<T>(items: readonly T[], seed: number, salt: number): T[] {
  const random = seededRandom((seed * 1000003 + salt * 7919 + 17) >>> 0);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** A seeded hold-out: the same records are validation in every run with this seed. */
export function splitPairs(records: PairRecord[], fraction: number, seed: number): { train: PairRecord[]; validation: PairRecord[] } {
  const shuffled = seededShuffle(records, seed, 1);
  const count = Math.floor(records.length * fraction);
  const held = new Set(shuffled.slice(0, count).map((r) => r.index));
  return { train: records.filter((r) => !held.has(r.index)), validation: records.filter((r) => held.has(r.index)) };
}

/**
 * The records of one epoch, in order: every pair once, shuffled by (seed, epoch). With both real
 * and synthetic pairs and a ratio r in (0, 1), an epoch is the largest mix with r synthetic that
 * repeats no pair: a seeded subset of each kind, shuffled together.
 */
export function epochOrder(train: PairRecord[], syntheticRatio: number, seed: number, epoch: number): PairRecord[] {
  const real = train.filter((r) => r.source === 'real');
  const synthetic = train.filter((r) => r.source === 'synthetic');
  let pool: PairRecord[];
  if (real.length === 0 || synthetic.length === 0) pool = train;
  else if (syntheticRatio <= 0) pool = real;
  else if (syntheticRatio >= 1) pool = synthetic;
  else {
    const size = Math.floor(Math.min(real.length / (1 - syntheticRatio), synthetic.length / syntheticRatio));
    const nSynthetic = Math.round(size * syntheticRatio);
    pool = [...seededShuffle(real, seed, 1000 + epoch).slice(0, size - nSynthetic), ...seededShuffle(synthetic, seed, 2000 + epoch).slice(0, nSynthetic)];
  }
  return seededShuffle(pool, seed, 3000 + epoch);
}

/** Token ids, mask and word mask of every report, computed once. */
export interface TokenizedReports {
  length: number;
  ids: Map<number, Int32Array>;
  mask: Map<number, Uint8Array>;
}

/** Tokenises every record's report; a report with no word piece is skipped and counted. */
export async function tokenizeRecords(tokenizer: WordPieceTokenizer, records: PairRecord[], skipped: SkippedRecord[]): Promise<{ kept: PairRecord[]; tokens: TokenizedReports }> {
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

export interface ImageInputOptions {
  size: number;
  channels: number;
  mean: number;
  std: number;
}

/** Where a batch stopped in its epoch: resuming from it continues the same order. */
export interface DataPosition {
  epoch: number;
  /** Index into the epoch's order of the next record to read. */
  cursor: number;
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
 * Turns the training pairs into batches: epoch order from (seed, epoch), images decoded (PNG,
 * JPEG, DICOM) and augmented with draws seeded by (seed, epoch, position), so any position
 * replays exactly. A record whose image fails to decode is skipped and counted, and the batch
 * filled with the next records of the same order.
 */
export class PairBatchLoader {
  private readonly orders = new Map<number, PairRecord[]>();
  private readonly cache = new Map<string, GrayImage>();
  private cachedBytes = 0;
  /** Images known to fail, so a second epoch does not try them again. */
  private readonly bad = new Set<string>();

  constructor(private readonly options: BatchLoaderOptions) {}

  order(epoch: number): PairRecord[] {
    let order = this.orders.get(epoch);
    if (!order) {
      order = epochOrder(this.options.train, this.options.syntheticRatio, this.options.seed, epoch);
      this.orders.clear();
      this.orders.set(epoch, order);
    }
    return order;
  }

  /** Full batches an epoch yields at most (fewer when images fail to decode). */
  stepsPerEpoch(): number {
    return Math.floor(this.order(0).length / this.options.batchSize);
  }

  /** The batch starting at `position`, or the start of the next epoch when this one has too few records left. */
  async load(position: DataPosition): Promise<LoadedBatch> {
    const { batchSize, image, tokens } = this.options;
    let { epoch, cursor } = position;
    let order = this.order(epoch);
    if (order.length - cursor < batchSize) {
      epoch++;
      cursor = 0;
      order = this.order(epoch);
    }
    const plane = image.size * image.size * image.channels;
    const pixels = new Float32Array(batchSize * plane);
    const L = tokens.length;
    const ids = new BigInt64Array(batchSize * L);
    const mask = new BigInt64Array(batchSize * L);
    const words = new Float32Array(batchSize * L);
    const records: number[] = [];
    const skipped: SkippedRecord[] = [];
    while (records.length < batchSize) {
      if (cursor >= order.length) {
        // Too many failures left this epoch short: continue with the next epoch's order.
        epoch++;
        cursor = 0;
        order = this.order(epoch);
        if (order.length < batchSize) throw new Error(`fewer than batch_size (${batchSize}) pairs remain after skipping images that fail to decode`);
      }
      const record = order[cursor];
      const at = cursor++;
      // Counted once, when it first failed.
      if (this.bad.has(record.imageKey)) continue;
      let picture: GrayImage;
      try {
        picture = await this.decode(record.imageKey);
      } catch (error) {
        skipped.push({ manifest: record.manifest, lineNumber: record.lineNumber, reason: describeFailure(error) });
        continue;
      }
      const row = records.length;
      const prepared = this.options.augment
        ? augmentRadiograph(picture, image.size, seededRandom((this.options.seed * 2654435761 + epoch * 97 + at * 31337) >>> 0), { crop: { scale: [0.6, 1] }, affine: { degrees: 10, translate: 0.05 }, jitter: { brightness: 0.2, contrast: 0.2 } })
        : centerCropSquare(picture, image.size);
      normalizeInto(prepared, pixels, row * plane, image.channels, image.mean, image.std);
      const recordIds = tokens.ids.get(record.index)!;
      const recordMask = tokens.mask.get(record.index)!;
      for (let t = 0; t < L; t++) {
        ids[row * L + t] = BigInt(recordIds[t]);
        mask[row * L + t] = BigInt(recordMask[t]);
        words[row * L + t] = recordMask[t] === 1 && !this.options.specialIds.includes(recordIds[t]) ? 1 : 0;
      }
      records.push(record.index);
    }
    return {
      feeds: {
        pixel_values: new ort.Tensor('float32', pixels, [batchSize, image.channels, image.size, image.size]),
        input_ids: new ort.Tensor('int64', ids, [batchSize, L]),
        attention_mask: new ort.Tensor('int64', mask, [batchSize, L]),
        [WORD_MASK_INPUT]: new ort.Tensor('float32', words, [batchSize, L]),
      },
      records,
      next: { epoch, cursor },
      skipped,
    };
  }

  private async decode(key: string): Promise<GrayImage> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    let image: GrayImage;
    try {
      image = decodeImage(await getBuffer(this.options.store, key));
    } catch (error) {
      this.bad.add(key);
      throw error;
    }
    // Keep at most twice the training size on the short side: crops and resizes need no more.
    const short = Math.min(image.width, image.height);
    const limit = 2 * this.options.image.size;
    if (short > limit) image = resize(image, Math.round((image.width * limit) / short), Math.round((image.height * limit) / short));
    const bytes = image.data.byteLength;
    if (this.cachedBytes + bytes <= (this.options.cacheBytes ?? 256 << 20)) {
      this.cache.set(key, image);
      this.cachedBytes += bytes;
    }
    return image;
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof ArtifactNotFoundError) return 'image not found in the store';
  // Decoder messages describe the format problem, never pixel or patient data.
  return `image failed to decode: ${(error as Error).message}`;
}

/**
 * Keeps up to `depth` batches loading ahead of the trainer: store reads and decoding proceed
 * whenever the JavaScript thread is free. onnxruntime-node's session.run holds that thread for
 * the whole step (measured: one 5 ms timer tick during a 3.1 s run), so decoding overlaps the
 * step's compute only where it waits on I/O; worker threads would overlap it fully (not done).
 */
export class Prefetcher {
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
