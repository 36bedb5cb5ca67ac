import * as ort from 'onnxruntime-node';
import type { Ops, Value } from '@medsyn/onnx-graph';
import { linear, modelBuilder } from '@medsyn/model-zoo';
import { Trainer, buildTrainingStep, type ExecutionProvider } from '@medsyn/training';
import { seededRandom, shuffled } from './splits';

/** Mean binary cross-entropy on logits, in the numerically stable form max(x,0) - x*y + log(1 + e^-|x|). */
export function bceWithLogits(o: Ops, logits: Value, target: Value): Value {
  const perEntry = o.add(o.sub(o.relu(logits), o.mul(logits, target)), o.log(o.add(o.scalar('float32', 1), o.exp(o.neg(o.abs(logits))))));
  return perEntry;
}

/** Mean softmax cross-entropy over rows (one-hot targets [n, C]). */
export function softmaxCrossEntropy(o: Ops, logits: Value, target: Value): Value {
  return o.neg(o.reduceMean(o.reduceSum(o.mul(o.logSoftmax(logits), target), [1], false), [0], false));
}

export interface ProbeOptions {
  kind: 'multi-label' | 'multi-class';
  classes: number;
  seed: number;
  /** Passes over the training features at most (default 200). */
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  weightDecay?: number;
  /** Epochs without a better validation loss before stopping (default 20). */
  patience?: number;
  executionProvider?: ExecutionProvider;
  onEpoch?: (epoch: number, validationLoss: number) => void;
}

/** Features and targets of a set of images: row-major [n, dim] and [n, classes] (0/1, one-hot for multi-class). */
export interface ProbeSet {
  features: Float32Array;
  targets: Float32Array;
  n: number;
}

export interface LinearProbe {
  /** [classes, dim] (PyTorch layout), applied to standardised features. */
  weight: Float32Array;
  bias: Float32Array;
  /** Training-set feature mean and standard deviation used to standardise inputs. */
  mean: Float32Array;
  std: Float32Array;
  kind: 'multi-label' | 'multi-class';
  classes: number;
  dim: number;
  bestEpoch: number;
  epochsRun: number;
  /** Optimizer steps made, for throughput figures. */
  steps: number;
}

/** Per-feature mean and standard deviation (0 std becomes 1) of [n, dim] rows. */
export function featureStatistics(features: Float32Array, n: number, dim: number): { mean: Float32Array; std: Float32Array } {
  const mean = new Float32Array(dim);
  const std = new Float32Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) mean[d]! += features[i * dim + d]! / n;
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) std[d]! += (features[i * dim + d]! - mean[d]!) ** 2 / n;
  for (let d = 0; d < dim; d++) std[d] = Math.sqrt(std[d]!) || 1;
  return { mean, std };
}

function standardise(features: Float32Array, n: number, dim: number, mean: Float32Array, std: Float32Array): Float32Array {
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) out[i * dim + d] = (features[i * dim + d]! - mean[d]!) / std[d]!;
  return out;
}

/** Class probabilities of a probe: sigmoid per class (multi-label) or softmax over classes (multi-class). */
export function probeScores(probe: LinearProbe, features: Float32Array, n: number): Float32Array {
  const { dim, classes } = probe;
  const x = standardise(features, n, dim, probe.mean, probe.std);
  const scores = new Float32Array(n * classes);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < classes; c++) {
      let z = probe.bias[c]!;
      for (let d = 0; d < dim; d++) z += probe.weight[c * dim + d]! * x[i * dim + d]!;
      scores[i * classes + c] = z;
    }
    if (probe.kind === 'multi-label') for (let c = 0; c < classes; c++) scores[i * classes + c] = 1 / (1 + Math.exp(-scores[i * classes + c]!));
    else {
      let max = -Infinity;
      for (let c = 0; c < classes; c++) max = Math.max(max, scores[i * classes + c]!);
      let sum = 0;
      for (let c = 0; c < classes; c++) sum += scores[i * classes + c] = Math.exp(scores[i * classes + c]! - max);
      for (let c = 0; c < classes; c++) scores[i * classes + c]! /= sum;
    }
  }
  return scores;
}

/** Mean loss of probabilities against targets: binary (multi-label) or categorical cross-entropy. */
export function probeLoss(scores: Float32Array, targets: Float32Array, n: number, classes: number, kind: 'multi-label' | 'multi-class'): number {
  const eps = 1e-7;
  let sum = 0;
  for (let i = 0; i < n * classes; i++) {
    const p = Math.min(1 - eps, Math.max(eps, scores[i]!));
    sum += kind === 'multi-label' ? -(targets[i]! * Math.log(p) + (1 - targets[i]!) * Math.log(1 - p)) : -targets[i]! * Math.log(p);
  }
  return kind === 'multi-label' ? sum / (n * classes) : sum / n;
}

/**
 * One linear layer on frozen, standardised features, trained with our engine (AdamW), with
 * early stopping on the validation loss: the weights of the best validation epoch are kept.
 */
export async function trainLinearProbe(train: ProbeSet, validation: ProbeSet, dim: number, options: ProbeOptions): Promise<LinearProbe> {
  const { classes, kind } = options;
  if (train.n === 0) throw new RangeError('linear probe: no training images');
  if (train.features.length !== train.n * dim) throw new RangeError(`linear probe: ${train.features.length} feature values for ${train.n} images of dimension ${dim}`);
  const { mean, std } = featureStatistics(train.features, train.n, dim);
  const x = standardise(train.features, train.n, dim, mean, std);
  const step = buildTrainingStep({
    optimizer: { kind: 'adamw', weightDecay: options.weightDecay ?? 1e-4 },
    build: (g) => {
      const b = modelBuilder(g, { seed: options.seed, training: true });
      const o = b.o;
      const logits = linear(b, 'fc', g.input('features', 'float32', ['batch', dim]), dim, classes);
      const target = g.input('target', 'float32', ['batch', classes]);
      const loss = kind === 'multi-label' ? o.reduceMean(bceWithLogits(o, logits, target), [0, 1], false) : softmaxCrossEntropy(o, logits, target);
      return { loss };
    },
  });
  const trainer = await Trainer.create(step, { executionProvider: options.executionProvider ?? 'cpu', seed: options.seed });
  const batchSize = Math.min(options.batchSize ?? 128, train.n);
  const epochs = options.epochs ?? 200;
  const patience = options.patience ?? 20;
  const lr = options.learningRate ?? 3e-3;
  const rand = seededRandom(options.seed + 1);
  const snapshot = (): Pick<LinearProbe, 'weight' | 'bias'> => {
    const p = trainer.parameters();
    return { weight: (p.get('fc.weight')!.data as Float32Array).slice(), bias: (p.get('fc.bias')!.data as Float32Array).slice() };
  };
  const probeOf = (w: Pick<LinearProbe, 'weight' | 'bias'>, bestEpoch: number, epochsRun: number): LinearProbe => ({ ...w, mean, std, kind, classes, dim, bestEpoch, epochsRun, steps: trainer.step });
  // Full-batch training sees the same tensors every epoch: build them once.
  const fullBatch = batchSize >= train.n ? [{ features: new ort.Tensor('float32', x, [train.n, dim]), target: new ort.Tensor('float32', train.targets, [train.n, classes]) }] : undefined;
  const batchesOf = () => {
    if (fullBatch) return fullBatch;
    const order = shuffled(Array.from({ length: train.n }, (_, i) => i), rand);
    const batches: Record<string, ort.Tensor>[] = [];
    for (let start = 0; start < train.n; start += batchSize) {
      const rows = order.slice(start, start + batchSize);
      const bx = new Float32Array(rows.length * dim);
      const by = new Float32Array(rows.length * classes);
      rows.forEach((r, k) => {
        bx.set(x.subarray(r * dim, (r + 1) * dim), k * dim);
        by.set(train.targets.subarray(r * classes, (r + 1) * classes), k * classes);
      });
      batches.push({ features: new ort.Tensor('float32', bx, [rows.length, dim]), target: new ort.Tensor('float32', by, [rows.length, classes]) });
    }
    return batches;
  };
  let best = { loss: Infinity, epoch: 0, weights: snapshot() };
  let epoch = 0;
  try {
    for (epoch = 1; epoch <= epochs; epoch++) {
      for (const batch of batchesOf()) await trainer.trainStep(batch, lr);
      const weights = snapshot();
      const evalSet = validation.n > 0 ? validation : train;
      const loss = probeLoss(probeScores(probeOf(weights, 0, 0), evalSet.features, evalSet.n), evalSet.targets, evalSet.n, classes, kind);
      options.onEpoch?.(epoch, loss);
      if (loss < best.loss - 1e-6) best = { loss, epoch, weights };
      else if (epoch - best.epoch >= patience) break;
    }
    return probeOf(best.weights, best.epoch, Math.min(epoch, epochs));
  } finally {
    await trainer.release();
  }
}
