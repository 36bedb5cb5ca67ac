// The image half of a training batch: epoch order, decoding and augmentation. Nothing here
// imports onnxruntime, so the batch worker (batch-worker.ts) loads it without the native runtime.
import { ArtifactNotFoundError } from '@medsyn/artifact-store';
import type { PairRecord, SkippedRecord } from '@medsyn/dataset';
import {
  augmentRadiograph,
  centerCropSquare,
  decodeImage,
  normalizeInto,
  resize,
  type GrayImage,
} from '@medsyn/imaging';
import { seededRandom, seededShuffle } from '@medsyn/random';

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
    pool = [
      ...seededShuffle(real, seed, 1000 + epoch).slice(0, size - nSynthetic),
      ...seededShuffle(synthetic, seed, 2000 + epoch).slice(0, nSynthetic),
    ];
  }
  return seededShuffle(pool, seed, 3000 + epoch);
}

/** A batch's pixels (batch x channels x size x size, normalised) and where it stopped. */
export interface ImageBatch {
  pixels: Float32Array;
  /** Record indices in the batch, in order. */
  records: number[];
  /** Position after this batch. */
  next: DataPosition;
  /** Records that failed to decode while filling it. */
  skipped: SkippedRecord[];
}

export interface ImageBatcherOptions {
  /** The bytes of an image by store key. */
  read: (key: string) => Promise<Uint8Array>;
  train: PairRecord[];
  image: ImageInputOptions;
  batchSize: number;
  syntheticRatio: number;
  seed: number;
  augment: boolean;
  /** Decoded images kept in memory up to this many bytes (default 256 MiB). */
  cacheBytes?: number;
}

/** A batch load given up part-way because its consumer closed. */
export class BatchLoadStoppedError extends Error {
  override readonly name = 'BatchLoadStoppedError';
}

/**
 * Fills batches in epoch order from (seed, epoch), images decoded (PNG, JPEG, DICOM) and
 * augmented with draws seeded by (seed, epoch, position), so any position replays exactly on any
 * thread. A record whose image fails to decode is skipped and counted, and the batch filled with
 * the next records of the same order.
 */
export class ImageBatcher {
  private readonly orders = new Map<number, PairRecord[]>();
  private readonly cache = new Map<string, GrayImage>();
  private cachedBytes = 0;
  /** Images known to fail, so a second epoch does not try them again. */
  private readonly bad = new Set<string>();

  constructor(private readonly options: ImageBatcherOptions) {}

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

  /**
   * The batch starting at `position`, or the start of the next epoch when this one has too few
   * records left. `stopped` is asked before each record: when it says so, the load ends with
   * BatchLoadStoppedError.
   */
  async load(position: DataPosition, stopped?: () => boolean): Promise<ImageBatch> {
    const { batchSize, image } = this.options;
    let { epoch, cursor } = position;
    let order = this.order(epoch);
    if (order.length - cursor < batchSize) {
      epoch++;
      cursor = 0;
      order = this.order(epoch);
    }
    const plane = image.size * image.size * image.channels;
    const pixels = new Float32Array(batchSize * plane);
    const records: number[] = [];
    const skipped: SkippedRecord[] = [];
    while (records.length < batchSize) {
      if (stopped?.()) throw new BatchLoadStoppedError();
      if (cursor >= order.length) {
        // Too many failures left this epoch short: continue with the next epoch's order.
        epoch++;
        cursor = 0;
        order = this.order(epoch);
        // Images known not to decode do not count: were they counted, a set of such images would be walked epoch after epoch forever.
        if (order.filter((r) => !this.bad.has(r.imageKey)).length < batchSize)
          throw new Error(
            `fewer than batch_size (${batchSize}) pairs remain after skipping images that fail to decode`,
          );
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
      const prepared = this.options.augment
        ? augmentRadiograph(
            picture,
            image.size,
            seededRandom((this.options.seed * 2654435761 + epoch * 97 + at * 31337) >>> 0),
            {
              crop: { scale: [0.6, 1] },
              affine: { degrees: 10, translate: 0.05 },
              jitter: { brightness: 0.2, contrast: 0.2 },
            },
          )
        : centerCropSquare(picture, image.size);
      normalizeInto(prepared, pixels, records.length * plane, image.channels, image.mean, image.std);
      records.push(record.index);
    }
    return { pixels, records, next: { epoch, cursor }, skipped };
  }

  private async decode(key: string): Promise<GrayImage> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    let image: GrayImage;
    try {
      image = decodeImage(await this.options.read(key));
    } catch (error) {
      this.bad.add(key);
      throw error;
    }
    // Keep at most twice the training size on the short side: crops and resizes need no more.
    const short = Math.min(image.width, image.height);
    const limit = 2 * this.options.image.size;
    if (short > limit)
      image = resize(image, Math.round((image.width * limit) / short), Math.round((image.height * limit) / short));
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
