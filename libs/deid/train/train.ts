/**
 * Trains the PHI tagger with libs/training: the model graph (src/tagger/model.ts) plus a
 * per-token cross-entropy becomes one training-step ONNX graph run by onnxruntime.
 */
import * as ort from 'onnxruntime-node';
import { ops, type GraphBuilder } from '@medsyn/onnx-graph';
import { seededRandom, shuffled } from '@medsyn/random';
import { Trainer, buildTrainingStep, exportInferenceModel } from '@medsyn/training';
import { FEATURE_SLOTS, FEATURE_VERSION, FeatureExtractor } from '../src/tagger/features';
import { TAGGER_CLASSES, buildTagger, type TaggerConfig } from '../src/tagger/model';
import type { TaggerMeta } from '../src/tagger/phi-tagger';
import { tokenize } from '../src/tagger/tokens';
import { withRandomCase, withSurrogates, type LabelledText } from './surrogates';

export interface TrainOptions {
  /** Notes with gold spans: each epoch sees every note once, with fresh surrogates. */
  notes: LabelledText[];
  /** Texts without PHI (or with ignored ranges): negativesPerEpoch of them are drawn each epoch. */
  negatives: LabelledText[];
  negativesPerEpoch: number;
  config: TaggerConfig;
  epochs: number;
  seed: number;
  /** Windows per step and tokens per window. */
  batchSize?: number;
  windowTokens?: number;
  learningRate?: number;
  /** Loss weight of a PHI token relative to a non-PHI one (> 1 favours recall). */
  phiWeight?: number;
  threshold: number;
  /** Share of tokens whose word-level features are dropped (and as many again: the word alone). */
  wordDropout?: number;
  /** Share of a note's distinct identifiers left as written (the rest get surrogates). */
  keepOriginal?: number;
  threads?: number;
  log?: (line: string) => void;
}

export interface TrainedTagger {
  model: Uint8Array;
  meta: TaggerMeta;
  losses: number[];
}

interface Encoded {
  ids: Int32Array;
  labels: Uint8Array;
  weights: Float32Array;
  length: number;
}

/** Token feature ids, class indices and loss weights of one labelled text. */
function encode(
  features: FeatureExtractor,
  example: LabelledText,
  phiWeight: number,
  rand: () => number,
  wordDropout: number,
): Encoded {
  const tokens = tokenize(example.text);
  const ids = new Int32Array(tokens.length * FEATURE_SLOTS);
  features.featurize(features.prepare(example.text, tokens), 0, tokens.length, ids);
  // Word dropout: the same 800 notes come back every epoch, and without it the model learns them
  // by heart (training loss ~0) instead of learning what contexts identifiers sit in.
  for (let t = 0; t < tokens.length; t++) {
    const r = rand();
    if (r < wordDropout) for (let slot = 0; slot <= 6; slot++) ids[t * FEATURE_SLOTS + slot] = features.unknown(slot);
    else if (r < 2 * wordDropout) ids[t * FEATURE_SLOTS] = features.unknown(0);
  }
  const labels = new Uint8Array(tokens.length);
  const weights = new Float32Array(tokens.length).fill(1);
  // A token is gold when any span overlaps it: the scorer's definition.
  const spans = [...example.spans].sort((a, b) => a.start - b.start);
  let s = 0;
  tokens.forEach((token, t) => {
    while (s < spans.length && spans[s]!.end <= token.start) s++;
    for (let k = s; k < spans.length && spans[k]!.start < token.end; k++) {
      if (spans[k]!.end > token.start) {
        labels[t] = TAGGER_CLASSES.indexOf(spans[k]!.label as (typeof TAGGER_CLASSES)[number]);
        weights[t] = phiWeight;
        break;
      }
    }
    if (example.ignore?.some((r) => r.start < token.end && r.end > token.start)) weights[t] = 0;
  });
  return { ids, labels, weights, length: tokens.length };
}

/** Cuts encoded texts into windows of at most `size` tokens, starting at a random offset. */
function windows(docs: Encoded[], size: number, rand: () => number): { doc: Encoded; start: number; end: number }[] {
  const out: { doc: Encoded; start: number; end: number }[] = [];
  for (const doc of docs) {
    let start = doc.length > size ? -Math.floor(rand() * size) : 0;
    for (; start < doc.length; start += size)
      out.push({ doc, start: Math.max(0, start), end: Math.min(doc.length, start + size) });
  }
  return out;
}

export function taggerInference(config: TaggerConfig) {
  return (g: GraphBuilder) => ({
    logprobs: buildTagger(g, g.input('ids', 'int32', ['batch', 'tokens', FEATURE_SLOTS]), config),
  });
}

export async function trainTagger(options: TrainOptions): Promise<TrainedTagger> {
  const { config, seed } = options;
  const batchSize = options.batchSize ?? 32;
  const size = options.windowTokens ?? 128;
  const phiWeight = options.phiWeight ?? 2;
  const classes = TAGGER_CLASSES.length;
  const features = new FeatureExtractor(config.buckets);
  const step = buildTrainingStep({
    optimizer: { kind: 'adamw', weightDecay: 1e-4 },
    maxGradNorm: 5,
    build: (g) => {
      const o = ops(g);
      const logProbs = buildTagger(g, g.input('ids', 'int32', [batchSize, size, FEATURE_SLOTS]), config, seed);
      // Static shapes: the Conv gradient needs them. target: one-hot times the token's loss weight; norm: 1 / (sum of weights) of the batch.
      const target = g.input('target', 'float32', [batchSize, size, classes]);
      const norm = g.input('norm', 'float32', [1]);
      return { loss: o.mul(o.neg(o.reduceSum(o.mul(logProbs, target), [], false)), o.reshape(norm, [])) };
    },
  });
  const trainer = await Trainer.create(step, { executionProvider: 'cpu', intraOpThreads: options.threads ?? 2, seed });

  const epochBatches = (epoch: number) => {
    // Seeds far apart for consecutive epochs: nearby seeds give related first draws.
    const r = seededRandom((seed * 1000003 + epoch * 7919) >>> 0);
    const examples = options.notes.map((note) => withRandomCase(withSurrogates(note, r, options.keepOriginal ?? 0), r));
    const negatives = shuffled(options.negatives, r).slice(0, options.negativesPerEpoch);
    const encoded = [...examples, ...negatives].map((e) =>
      encode(features, e, phiWeight, r, options.wordDropout ?? 0.15),
    );
    return shuffled(windows(encoded, size, r), r);
  };
  const stepsPerEpoch = Math.ceil(epochBatches(0).length / batchSize);
  const totalSteps = stepsPerEpoch * options.epochs;
  const peak = options.learningRate ?? 3e-3;
  const losses: number[] = [];
  let stepIndex = 0;
  const started = Date.now();
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const ws = epochBatches(epoch);
    let epochLoss = 0;
    let count = 0;
    for (let b = 0; b < ws.length && stepIndex < totalSteps; b += batchSize) {
      const batch = ws.slice(b, b + batchSize);
      const length = size;
      const ids = new Int32Array(batchSize * length * FEATURE_SLOTS);
      const target = new Float32Array(batchSize * length * classes);
      let total = 0;
      batch.forEach((w, i) => {
        ids.set(w.doc.ids.subarray(w.start * FEATURE_SLOTS, w.end * FEATURE_SLOTS), i * length * FEATURE_SLOTS);
        for (let t = w.start; t < w.end; t++) {
          const weight = w.doc.weights[t]!;
          target[(i * length + t - w.start) * classes + w.doc.labels[t]!] = weight;
          total += weight;
        }
      });
      const lr =
        peak *
        Math.min(1, (stepIndex + 1) / 30) *
        (0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * stepIndex) / totalSteps)));
      const { loss } = await trainer.trainStep(
        {
          ids: new ort.Tensor('int32', ids, [batchSize, length, FEATURE_SLOTS]),
          target: new ort.Tensor('float32', target, [batchSize, length, classes]),
          norm: new ort.Tensor('float32', Float32Array.of(1 / Math.max(1, total)), [1]),
        },
        lr,
      );
      losses.push(loss);
      epochLoss += loss;
      count++;
      stepIndex++;
    }
    options.log?.(
      `epoch ${epoch + 1}/${options.epochs}: ${count} steps, mean loss ${(epochLoss / Math.max(1, count)).toFixed(4)}, ${((Date.now() - started) / 1000).toFixed(0)} s`,
    );
  }
  const model = exportInferenceModel(taggerInference(config), trainer.parameters(), { name: 'phi-tagger' });
  await trainer.release();
  return {
    model,
    losses,
    meta: { featureVersion: FEATURE_VERSION, config, classes: [...TAGGER_CLASSES], threshold: options.threshold },
  };
}
