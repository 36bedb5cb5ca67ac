import * as ort from 'onnxruntime-node';
import { detectionHead, modelBuilder, unetDecoder, type DecoderNorm } from '@medsyn/model-zoo';
import type { GraphBuilder, Tensor, Value } from '@medsyn/onnx-graph';
import { seededRandom, shuffled } from '@medsyn/random';
import {
  Trainer,
  buildTrainingStep,
  createSession,
  exportInferenceModel,
  type ExecutionProvider,
} from '@medsyn/training';
import { bceWithLogits } from './linear-probe';
import type { Box, ScoredBox } from '@medsyn/evaluation-report';
import { detectionMap, dice, iou } from './metrics';
import type { EncodedImages, FeatureMapSpec } from './encoder';

/** Feature maps of one set of images, as the encoder cache holds them. */
export type FeatureMaps = NonNullable<EncodedImages['maps']>;

/** Per-channel mean and standard deviation of a map. */
export interface ChannelStatistics {
  mean: Float64Array;
  std: Float64Array;
}

/**
 * Per-channel mean and standard deviation of each map over every pixel of the given rows (a
 * channel with 0 std gets 1). The heads see (map - mean) / std with the training rows' statistics,
 * as the linear probe standardises pooled features: an encoder's channel scales and offsets then
 * do not decide how fast a head trains with a fixed learning rate and step count.
 */
export function mapStatistics(maps: FeatureMaps, rows: number[]): ChannelStatistics[] {
  return maps.map((m) => {
    const plane = m.size * m.size;
    const C = m.spec.channels;
    const mean = new Float64Array(C);
    const std = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      let sum = 0;
      let squares = 0;
      for (const r of rows) {
        const at = (r * C + c) * plane;
        for (let i = 0; i < plane; i++) {
          const v = m.data[at + i]!;
          sum += v;
          squares += v * v;
        }
      }
      const n = rows.length * plane;
      mean[c] = sum / n;
      std[c] = Math.sqrt(Math.max(0, squares / n - mean[c]! * mean[c]!)) || 1;
    }
    return { mean, std };
  });
}

/** Rows of the cached maps for the given image rows, as a batch tensor per map, standardised with `statistics` (one per map). */
function mapBatch(
  maps: FeatureMaps,
  rows: number[],
  statistics: ChannelStatistics[] | undefined,
): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  maps.forEach((m, k) => {
    const plane = m.size * m.size;
    const per = m.spec.channels * plane;
    const data = new Float32Array(rows.length * per);
    rows.forEach((r, i) => data.set(m.data.subarray(r * per, (r + 1) * per), i * per));
    const stats = statistics?.[k];
    if (stats) {
      for (let i = 0; i < rows.length; i++) {
        for (let c = 0; c < m.spec.channels; c++) {
          const at = i * per + c * plane;
          const mean = stats.mean[c]!;
          const scale = 1 / stats.std[c]!;
          for (let p = 0; p < plane; p++) data[at + p] = (data[at + p]! - mean) * scale;
        }
      }
    }
    feeds[`map.${m.spec.name}`] = new ort.Tensor('float32', data, [rows.length, m.spec.channels, m.size, m.size]);
  });
  return feeds;
}

const mapInput = (g: GraphBuilder, m: FeatureMaps[number]) =>
  g.input(`map.${m.spec.name}`, 'float32', ['batch', m.spec.channels, m.size, m.size]);

export interface DenseTrainOptions {
  seed: number;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  patience?: number;
  /** Optimizer steps per epoch at least (default 8): small training sets are cycled. */
  minStepsPerEpoch?: number;
  /** Standardise each map channel with the training rows' mean and std (default true). */
  standardise?: boolean;
  /** The U-Net decoder's normalisation (default `group`; docs/evaluator.md says why). */
  decoderNorm?: DecoderNorm;
  executionProvider?: ExecutionProvider;
  /** onnxruntime's threads per operator (default: its own choice, all cores). */
  intraOpThreads?: number;
  onEpoch?: (epoch: number, validationScore: number) => void;
}

/**
 * One epoch's batches: full batches of a shuffled order (the last partial batch dropped), and at
 * least `minSteps` of them: a training set of a few images (1 % of the labels) is cycled through
 * fresh shuffles, so a head gets comparable optimisation at every label fraction instead of one
 * step per epoch.
 */
export function epochBatches(rows: number[], batchSize: number, minSteps: number, rand: () => number): number[][] {
  const batches: number[][] = [];
  do {
    const order = shuffled(rows, rand);
    for (let start = 0; start + batchSize <= order.length; start += batchSize)
      batches.push(order.slice(start, start + batchSize));
  } while (batches.length < minSteps);
  return batches;
}

/**
 * Trains on rows of the cache, scoring the validation rows after each epoch (higher is better)
 * and keeping the best epoch's parameters (early stopping).
 */
async function trainWithEarlyStopping(
  build: (g: GraphBuilder, training: boolean) => { loss?: Value; outputs: Record<string, Value> },
  trainRows: number[],
  feedsOf: (rows: number[]) => Record<string, ort.Tensor>,
  validate: (parameters: Map<string, Tensor>) => Promise<number>,
  options: DenseTrainOptions,
): Promise<{ parameters: Map<string, Tensor>; bestEpoch: number; steps: number }> {
  const step = buildTrainingStep({
    optimizer: { kind: 'adamw', weightDecay: 1e-4 },
    maxGradNorm: 5,
    build: (g) => ({ loss: build(g, true).loss! }),
  });
  const trainer = await Trainer.create(step, {
    executionProvider: options.executionProvider ?? 'cpu',
    intraOpThreads: options.intraOpThreads,
    seed: options.seed,
  });
  const rand = seededRandom(options.seed + 17);
  const batchSize = Math.min(options.batchSize ?? 8, trainRows.length);
  let best = { score: -Infinity, epoch: 0, parameters: trainer.parameters() };
  try {
    for (let epoch = 1; epoch <= (options.epochs ?? 20); epoch++) {
      for (const batch of epochBatches(trainRows, batchSize, options.minStepsPerEpoch ?? 8, rand))
        await trainer.trainStep(feedsOf(batch), options.learningRate ?? 3e-3);
      const parameters = trainer.parameters();
      const score = await validate(parameters);
      options.onEpoch?.(epoch, score);
      if (score > best.score) best = { score, epoch, parameters };
      else if (epoch - best.epoch >= (options.patience ?? 10)) break;
    }
    return { parameters: best.parameters, bestEpoch: best.epoch, steps: trainer.step };
  } finally {
    await trainer.release();
  }
}

/** Runs an inference export of `build` over rows in batches and hands each batch's outputs over. */
async function inferRows(
  model: Uint8Array,
  rows: number[],
  feedsOf: (rows: number[]) => Record<string, ort.Tensor>,
  each: (out: ort.InferenceSession.OnnxValueMapType, rows: number[]) => void,
  { executionProvider, intraOpThreads }: DenseTrainOptions,
): Promise<void> {
  const session = await createSession(model, { executionProvider, intraOpThreads });
  try {
    for (let start = 0; start < rows.length; start += 16) {
      const batch = rows.slice(start, start + 16);
      each(await session.run(feedsOf(batch)), batch);
    }
  } finally {
    await session.release();
  }
}

// ---------------------------------------------------------------------------------------------
// Segmentation

export interface SegmentationResult {
  /** Mean per-image Dice on the test rows (at the encoder's input size). */
  dice: number;
  perImage: number[];
  /** Predicted binary masks of the test rows [size * size] each. */
  predictions: Uint8Array[];
  bestEpoch: number;
  steps: number;
}

/**
 * U-Net decoder (the zoo's unetDecoder) on the frozen encoder's cached multi-scale maps, one
 * foreground class, trained with binary cross-entropy plus soft Dice (masks are imbalanced),
 * early stopping on validation Dice. `masks[row]` is the binary target at the input size.
 */
export async function trainSegmentation(
  maps: FeatureMaps,
  masks: Uint8Array[],
  size: number,
  rows: { train: number[]; validation: number[]; test: number[] },
  options: DenseTrainOptions,
): Promise<SegmentationResult> {
  for (const r of [...rows.train, ...rows.validation, ...rows.test]) {
    if (!masks[r] || masks[r]!.length !== size * size)
      throw new RangeError(
        `segmentation: mask of row ${r} has ${masks[r]?.length ?? 0} pixels, expected ${size}x${size}`,
      );
  }
  // The decoder needs maps whose strides double from one to the next, finest first.
  const chain = maps.filter((m, i) => i === 0 || m.spec.stride === maps[i - 1]!.spec.stride * 2);
  if (chain.length < 2)
    throw new RangeError('segmentation needs at least two feature maps with doubling strides in encoder.json');
  const encoderChannels = chain.map((m) => m.spec.channels);
  const decoderChannels = encoderChannels
    .slice(0, -1)
    .reverse()
    .map((c) => Math.max(8, Math.min(64, c)));
  const build = (g: GraphBuilder, training: boolean): { loss?: Value; outputs: Record<string, Value> } => {
    const b = modelBuilder(g, { seed: options.seed, training });
    const logits = unetDecoder(
      b,
      chain.map((m) => mapInput(g, m)),
      {
        encoderChannels,
        decoderChannels,
        classes: 1,
        finalUpsample: chain[0]!.spec.stride,
        norm: options.decoderNorm ?? 'group',
      },
    );
    if (!training) return { outputs: { logits } };
    const o = b.o;
    const target = g.input('mask', 'float32', ['batch', 1, size, size]);
    const bce = o.reduceMean(bceWithLogits(o, logits, target), [0, 1, 2, 3], false);
    // Soft Dice over the batch (Milletari et al. 2016): 1 - 2 sum(p t) / (sum p + sum t).
    const p = o.sigmoid(logits);
    const one = o.scalar('float32', 1);
    const softDice = o.div(
      o.add(o.mul(o.scalar('float32', 2), o.reduceSum(o.mul(p, target), [], false)), one),
      o.add(o.add(o.reduceSum(p, [], false), o.reduceSum(target, [], false)), one),
    );
    return { loss: o.add(bce, o.sub(one, softDice)), outputs: {} };
  };
  const statistics = options.standardise === false ? undefined : mapStatistics(chain, rows.train);
  const feedsOf = (batch: number[], withTarget = true) => {
    const feeds = mapBatch(chain, batch, statistics);
    if (withTarget) {
      const mask = new Float32Array(batch.length * size * size);
      batch.forEach((r, i) => mask.set(masks[r]!, i * size * size));
      feeds.mask = new ort.Tensor('float32', mask, [batch.length, 1, size, size]);
    }
    return feeds;
  };
  const predict = async (parameters: Map<string, Tensor>, which: number[]) => {
    const out: Uint8Array[] = [];
    await inferRows(
      exportInferenceModel((g) => build(g, false).outputs, parameters),
      which,
      (b) => feedsOf(b, false),
      (result) => {
        const logits = result.logits!.data as Float32Array;
        for (let i = 0; i < logits.length / (size * size); i++)
          out.push(Uint8Array.from(logits.subarray(i * size * size, (i + 1) * size * size), (v) => (v > 0 ? 1 : 0)));
      },
      options,
    );
    return out;
  };
  const meanDiceOf = (predicted: Uint8Array[], which: number[]) =>
    predicted.reduce((s, p, i) => s + dice(p, masks[which[i]!]!), 0) / predicted.length;
  const trained = await trainWithEarlyStopping(
    build,
    rows.train,
    feedsOf,
    async (parameters) =>
      meanDiceOf(
        await predict(parameters, rows.validation.length ? rows.validation : rows.train),
        rows.validation.length ? rows.validation : rows.train,
      ),
    options,
  );
  const predictions = await predict(trained.parameters, rows.test);
  const perImage = predictions.map((p, i) => dice(p, masks[rows.test[i]!]!));
  return {
    dice: perImage.reduce((a, b) => a + b, 0) / perImage.length,
    perImage,
    predictions,
    bestEpoch: trained.bestEpoch,
    steps: trained.steps,
  };
}

// ---------------------------------------------------------------------------------------------
// Detection

/** The feature map a single-stage head runs on: stride 8 if listed, else the closest. */
export function detectionFeatureMap(maps: FeatureMapSpec[]): number {
  let best = 0;
  maps.forEach((m, i) => {
    if (Math.abs(Math.log2(m.stride / 8)) < Math.abs(Math.log2(maps[best]!.stride / 8))) best = i;
  });
  return best;
}

/**
 * FCOS targets (Tian et al. 2019) on an h x w grid of stride s: a location whose centre lies in
 * a box is a positive of that box (the smallest when several); box targets are the distances
 * to the box's left, top, right and bottom edges in feature cells; centerness is
 * sqrt(min(l,r)/max(l,r) * min(t,b)/max(t,b)).
 */
export function fcosTargets(boxes: Box[], grid: number, stride: number, classes: number) {
  const cls = new Float32Array(classes * grid * grid);
  const box = new Float32Array(4 * grid * grid).fill(1);
  const positive = new Float32Array(grid * grid);
  const centerness = new Float32Array(grid * grid);
  for (let y = 0; y < grid; y++) {
    for (let x = 0; x < grid; x++) {
      const cx = (x + 0.5) * stride;
      const cy = (y + 0.5) * stride;
      let chosen: Box | undefined;
      for (const b of boxes) {
        if (
          cx > b.x &&
          cx < b.x + b.width &&
          cy > b.y &&
          cy < b.y + b.height &&
          (!chosen || b.width * b.height < chosen.width * chosen.height)
        )
          chosen = b;
      }
      if (!chosen) continue;
      const at = y * grid + x;
      const l = (cx - chosen.x) / stride;
      const t = (cy - chosen.y) / stride;
      const r = (chosen.x + chosen.width - cx) / stride;
      const btm = (chosen.y + chosen.height - cy) / stride;
      [l, t, r, btm].forEach((v, k) => (box[k * grid * grid + at] = v));
      cls[chosen.label * grid * grid + at] = 1;
      positive[at] = 1;
      centerness[at] = Math.sqrt((Math.min(l, r) / Math.max(l, r)) * (Math.min(t, btm) / Math.max(t, btm)));
    }
  }
  return { cls, box, positive, centerness };
}

/** Greedy non-maximum suppression per class: keeps the best-scoring box, drops overlaps above the threshold. */
export function nonMaximumSuppression(boxes: ScoredBox[], threshold = 0.5, maxDetections = 100): ScoredBox[] {
  const kept: ScoredBox[] = [];
  for (const b of [...boxes].sort((p, q) => q.score - p.score)) {
    if (kept.some((k) => k.label === b.label && iou(k, b) > threshold)) continue;
    kept.push(b);
    if (kept.length === maxDetections) break;
  }
  return kept;
}

/** Boxes from the head's outputs for one image: score = sqrt(sigmoid(class) * sigmoid(centerness)), then NMS. */
export function decodeDetections(
  classLogits: Float32Array,
  distances: Float32Array,
  centerness: Float32Array,
  grid: number,
  stride: number,
  classes: number,
  scoreThreshold = 0.05,
): ScoredBox[] {
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
  const plane = grid * grid;
  const candidates: ScoredBox[] = [];
  for (let at = 0; at < plane; at++) {
    const cx = ((at % grid) + 0.5) * stride;
    const cy = (Math.floor(at / grid) + 0.5) * stride;
    const ctr = sigmoid(centerness[at]!);
    for (let c = 0; c < classes; c++) {
      const score = Math.sqrt(sigmoid(classLogits[c * plane + at]!) * ctr);
      if (score < scoreThreshold) continue;
      const [l, t, r, b] = [0, 1, 2, 3].map((k) => distances[k * plane + at]! * stride) as [
        number,
        number,
        number,
        number,
      ];
      candidates.push({ x: cx - l, y: cy - t, width: l + r, height: t + b, label: c, score });
    }
  }
  return nonMaximumSuppression(candidates);
}

export interface DetectionResult {
  map_40_75: number;
  map_50: number;
  /** Detections of the test rows in input-size pixels. */
  detections: ScoredBox[][];
  bestEpoch: number;
  steps: number;
}

/**
 * The zoo's FCOS-style head on one cached feature map of the frozen encoder: sigmoid
 * cross-entropy on classes, 1 - IoU on the edge distances and cross-entropy on centerness over
 * positive locations, each normalised by the number of positives; early stopping on
 * validation mAP@[.40:.75]. Boxes are in input-size pixels.
 */
export async function trainDetection(
  maps: FeatureMaps,
  boxes: Box[][],
  classes: number,
  rows: { train: number[]; validation: number[]; test: number[] },
  options: DenseTrainOptions,
): Promise<DetectionResult> {
  const score = (detections: ScoredBox[][], truths: Box[][]) => detectionMap(detections, truths, classes);
  const k = detectionFeatureMap(maps.map((m) => m.spec));
  const map = maps[k]!;
  const grid = map.size;
  const stride = map.spec.stride;
  const channels = Math.max(16, Math.min(64, map.spec.channels));
  const targets = boxes.map((b) => fcosTargets(b, grid, stride, classes));
  const build = (g: GraphBuilder, training: boolean): { loss?: Value; outputs: Record<string, Value> } => {
    const b = modelBuilder(g, { seed: options.seed, training });
    const o = b.o;
    const head = detectionHead(b, mapInput(g, map), { inChannels: map.spec.channels, channels, classes });
    if (!training)
      return { outputs: { class_logits: head.classLogits, distances: head.boxes, centerness: head.centerness } };
    const cls = g.input('cls_target', 'float32', ['batch', classes, grid, grid]);
    const box = g.input('box_target', 'float32', ['batch', 4, grid, grid]);
    const positive = g.input('positive', 'float32', ['batch', 1, grid, grid]);
    const ctr = g.input('centerness_target', 'float32', ['batch', 1, grid, grid]);
    const all = [0, 1, 2, 3];
    const count = o.add(o.reduceSum(positive, all, false), o.scalar('float32', 1));
    const clsLoss = o.div(o.reduceSum(bceWithLogits(o, head.classLogits, cls), all, false), count);
    // IoU of predicted and target boxes sharing the location (UnitBox, Yu et al. 2016).
    const [pl, pt, pr, pb] = o.split(head.boxes, [1, 1, 1, 1], 1) as unknown as Value[];
    const [tl, tt, tr, tb] = o.split(box, [1, 1, 1, 1], 1) as unknown as Value[];
    const area = (l: Value, t: Value, r: Value, bt: Value) => o.mul(o.add(l, r), o.add(t, bt));
    const inter = o.mul(o.add(o.min(pl!, tl!), o.min(pr!, tr!)), o.add(o.min(pt!, tt!), o.min(pb!, tb!)));
    const union = o.sub(o.add(area(pl!, pt!, pr!, pb!), area(tl!, tt!, tr!, tb!)), inter);
    const iouLoss = o.mul(
      o.sub(o.scalar('float32', 1), o.div(inter, o.add(union, o.scalar('float32', 1e-6)))),
      positive,
    );
    const boxLoss = o.div(o.reduceSum(iouLoss, all, false), count);
    const ctrLoss = o.div(o.reduceSum(o.mul(bceWithLogits(o, head.centerness, ctr), positive), all, false), count);
    return { loss: o.add(clsLoss, o.add(boxLoss, ctrLoss)), outputs: {} };
  };
  const statistics = options.standardise === false ? undefined : mapStatistics([map], rows.train);
  const feedsOf = (batch: number[], withTarget = true) => {
    const feeds = mapBatch([map], batch, statistics);
    if (!withTarget) return feeds;
    const plane = grid * grid;
    const pack = (pick: (t: (typeof targets)[number]) => Float32Array, c: number, name: string) => {
      const data = new Float32Array(batch.length * c * plane);
      batch.forEach((r, i) => data.set(pick(targets[r]!), i * c * plane));
      feeds[name] = new ort.Tensor('float32', data, [batch.length, c, grid, grid]);
    };
    pack((t) => t.cls, classes, 'cls_target');
    pack((t) => t.box, 4, 'box_target');
    pack((t) => t.positive, 1, 'positive');
    pack((t) => t.centerness, 1, 'centerness_target');
    return feeds;
  };
  const predict = async (parameters: Map<string, Tensor>, which: number[]) => {
    const out: ScoredBox[][] = [];
    const plane = grid * grid;
    await inferRows(
      exportInferenceModel((g) => build(g, false).outputs, parameters),
      which,
      (b) => feedsOf(b, false),
      (result, batch) => {
        const cl = result.class_logits!.data as Float32Array;
        const di = result.distances!.data as Float32Array;
        const ce = result.centerness!.data as Float32Array;
        batch.forEach((_, i) =>
          out.push(
            decodeDetections(
              cl.subarray(i * classes * plane, (i + 1) * classes * plane),
              di.subarray(i * 4 * plane, (i + 1) * 4 * plane),
              ce.subarray(i * plane, (i + 1) * plane),
              grid,
              stride,
              classes,
            ),
          ),
        );
      },
      options,
    );
    return out;
  };
  const validationRows = rows.validation.length ? rows.validation : rows.train;
  const trained = await trainWithEarlyStopping(
    build,
    rows.train,
    feedsOf,
    async (p) =>
      score(
        await predict(p, validationRows),
        validationRows.map((r) => boxes[r]!),
      ).map_40_75,
    options,
  );
  const detections = await predict(trained.parameters, rows.test);
  return {
    ...score(
      detections,
      rows.test.map((r) => boxes[r]!),
    ),
    detections,
    bestEpoch: trained.bestEpoch,
    steps: trained.steps,
  };
}
