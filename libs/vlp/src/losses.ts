import type { Ops, Value } from '@medsyn/onnx-graph';
import { stopGradient } from '@medsyn/training';

/**
 * The pre-training objectives as graph builders over embeddings. Every function takes values of
 * static batch size B (a training job's batch is fixed) and returns the scalar loss and its parts.
 * Each is checked against a PyTorch transcription of its paper (test/python/vlp_losses_reference.py).
 */

/** Bias that removes a masked entry from a softmax (exp underflows to exactly 0 in float32). */
const MASKED = -1e9;

export interface LossOutput {
  loss: Value;
  /** Loss parts and diagnostics, reported per step. */
  parts: Record<string, Value>;
}

function batchOf(x: Value): number {
  const b = x.shape[0];
  if (typeof b !== 'number')
    throw new Error(`the contrastive losses need a static batch size, ${x.name} has [${x.shape}]`);
  return b;
}

const eye = (o: Ops, n: number) =>
  o.const(
    'float32',
    [n, n],
    Array.from({ length: n * n }, (_, i) => (Math.floor(i / n) === i % n ? 1 : 0)),
  );

/** x / max(||x||_2, 1e-12) along the last axis (torch.nn.functional.normalize). */
export function l2Normalize(o: Ops, x: Value): Value {
  const norm = o.sqrt(o.reduceSumSquare(x, [-1], true));
  return o.div(x, o.max(norm, o.scalar('float32', 1e-12)));
}

/**
 * Mean cross-entropy of square logits [B, B] whose targets are the diagonal, with the softmax
 * over `axis` (1: each row's classes are the columns, as F.cross_entropy(logits, arange(B));
 * 0: each column's classes are the rows, as F.cross_entropy(logits.T, arange(B))).
 */
export function diagonalCrossEntropy(o: Ops, logits: Value, axis: 0 | 1): Value {
  const n = batchOf(logits);
  const logProbs = o.logSoftmax(logits, axis);
  return o.neg(o.div(o.reduceSum(o.mul(logProbs, eye(o, n)), [], false), o.scalar('float32', n)));
}

/** In-batch top-1 retrieval accuracy of square similarities (rows retrieve columns): a metric, no gradient. */
export function retrievalTop1(o: Ops, similarities: Value): Value {
  const n = batchOf(similarities);
  const best = o.argMax(similarities, 1, false);
  const hit = o.cast(
    o.equal(
      best,
      o.const(
        'int64',
        [n],
        Array.from({ length: n }, (_, i) => i),
      ),
    ),
    'float32',
  );
  return o.reduceMean(hit, [], false);
}

/** Cosine similarity matrix [B, B] of a [B, D] and b [B, D] (rows: a). */
function cosineMatrix(o: Ops, a: Value, b: Value): Value {
  return o.matmul(l2Normalize(o, a), o.transpose(l2Normalize(o, b), [1, 0]));
}

export interface ConvirtOptions {
  /** τ (paper: 0.1). */
  temperature?: number;
  /** λ, the weight of the image-to-text direction (paper: 0.75). */
  imageToTextWeight?: number;
}

/**
 * ConVIRT (Zhang et al. 2020, eq. 2-4): symmetric InfoNCE over cosine similarities of the
 * projected image and text embeddings,
 *   l(v->u)_i = -log exp(<v_i,u_i>/τ) / Σ_k exp(<v_i,u_k>/τ),  l(u->v)_i likewise,
 *   L = mean_i λ l(v->u)_i + (1 - λ) l(u->v)_i.
 */
export function convirtLoss(o: Ops, image: Value, text: Value, options: ConvirtOptions = {}): LossOutput {
  const temperature = options.temperature ?? 0.1;
  const lambda = options.imageToTextWeight ?? 0.75;
  const logits = o.div(cosineMatrix(o, image, text), o.scalar('float32', temperature));
  const imageToText = diagonalCrossEntropy(o, logits, 1);
  const textToImage = diagonalCrossEntropy(o, logits, 0);
  const loss = o.add(
    o.mul(imageToText, o.scalar('float32', lambda)),
    o.mul(textToImage, o.scalar('float32', 1 - lambda)),
  );
  return {
    loss,
    parts: { image_to_text: imageToText, text_to_image: textToImage, retrieval_top1: retrievalTop1(o, logits) },
  };
}

export interface GloriaInputs {
  /** Global image and report embeddings [B, D]. */
  image: Value;
  text: Value;
  /** Image sub-region features [B, R, D] (a feature map's positions). */
  regions: Value;
  /** Word features [B, T, D]. */
  words: Value;
  /** 1 for the words of each report ([SEP] included, as in GLoRIA's and MGCA's code), 0 for [CLS] and padding [B, T]. */
  wordMask: Value;
}

export interface GloriaOptions {
  /** τ1 sharpens word-to-region attention, τ2 scales word-context similarities, τ3 scales report-level similarities (paper: 4, 5, 10). */
  temperature1?: number;
  temperature2?: number;
  temperature3?: number;
  /** Weights of the global and local losses (paper: 1, 1). */
  globalWeight?: number;
  localWeight?: number;
}

/**
 * GLoRIA (Huang et al. 2021): global loss (eq. 7-8: cosine similarities times τ3, cross-entropy in
 * both directions) plus local loss (eq. 3-6). For report i and image j every word w_it attends
 * over the image's regions v_jr: the attention of GLoRIA's attention_fn (a softmax over the
 * report's words, then a softmax over regions sharpened by τ1) weights the regions into a
 * context c_ijt; Z(i,j) = log Σ_t exp(τ2 cos(w_it, c_ijt)) aggregates the words; cross-entropy
 * of τ3 Z in both directions.
 */
export function gloriaLoss(o: Ops, x: GloriaInputs, options: GloriaOptions = {}): LossOutput {
  const t1 = options.temperature1 ?? 4;
  const t2 = options.temperature2 ?? 5;
  const t3 = options.temperature3 ?? 10;
  const f = (v: number) => o.scalar('float32', v);

  const globalSim = o.mul(cosineMatrix(o, x.image, x.text), f(t3)); // [image j, text i]
  const global0 = diagonalCrossEntropy(o, globalSim, 1);
  const global1 = diagonalCrossEntropy(o, globalSim, 0);

  // Every (report i, image j) pair at once: scores[i, j, t, r] = w_it . v_jr.
  const words = o.unsqueeze(x.words, [1]); // [B, 1, T, D]
  const regions = o.unsqueeze(x.regions, [0]); // [1, B, R, D]
  const scores = o.matmul(words, o.transpose(regions, [0, 1, 3, 2])); // [B, B, T, R]
  const wordBias = o.unsqueeze(o.mul(o.sub(f(1), x.wordMask), f(MASKED)), [1, 3]); // [B, 1, T, 1]
  const overWords = o.softmax(o.add(scores, wordBias), 2);
  const attention = o.softmax(o.mul(overWords, f(t1)), 3);
  const context = o.matmul(attention, regions); // [B, B, T, D]
  const dot = o.reduceSum(o.mul(words, context), [3], false);
  const norms = o.mul(o.sqrt(o.reduceSumSquare(words, [3], false)), o.sqrt(o.reduceSumSquare(context, [3], false)));
  const cosine = o.div(dot, o.max(norms, f(1e-8))); // [B, B, T]
  const perWord = o.mul(o.exp(o.mul(cosine, f(t2))), o.unsqueeze(x.wordMask, [1]));
  const reportImage = o.log(o.reduceSum(perWord, [2], false)); // [text i, image j]
  const localSim = o.mul(o.transpose(reportImage, [1, 0]), f(t3)); // [image j, text i]
  const local0 = diagonalCrossEntropy(o, localSim, 1);
  const local1 = diagonalCrossEntropy(o, localSim, 0);

  const globalLoss = o.add(global0, global1);
  const localLoss = o.add(local0, local1);
  const loss = o.add(o.mul(globalLoss, f(options.globalWeight ?? 1)), o.mul(localLoss, f(options.localWeight ?? 1)));
  return { loss, parts: { global: globalLoss, local: localLoss, retrieval_top1: retrievalTop1(o, globalSim) } };
}

export interface MgcaInputs {
  image: Value;
  text: Value;
  /** Patch / region features [B, P, D]. */
  patches: Value;
  /** Word features [B, T, D]. */
  words: Value;
  wordMask: Value;
  /** Learnable prototypes [K, D] (normalised here, as MGCA normalises its prototype layer each step). */
  prototypes: Value;
}

export interface MgcaOptions {
  /** Instance-level temperature (paper code: 0.07). */
  temperature?: number;
  /** Token-level temperature (0.1). */
  localTemperature?: number;
  /** Prototype softmax temperature (0.2). */
  prototypeTemperature?: number;
  /** Sinkhorn-Knopp ε (0.05) and iterations (3). */
  sinkhornEpsilon?: number;
  sinkhornIterations?: number;
  /** λ1, λ2, λ3 (1, 1, 1). */
  instanceWeight?: number;
  tokenWeight?: number;
  prototypeWeight?: number;
}

/**
 * Sinkhorn-Knopp (Cuturi 2013) as SwAV and MGCA use it, without gradient: Q = exp(scores / ε)^T
 * [K, B] scaled to total 1, then alternately rows to 1/K and columns to 1/B; returns the
 * assignments [B, K] (each row sums to 1).
 */
export function sinkhornAssignments(o: Ops, scores: Value, epsilon: number, iterations: number): Value {
  const [b, k] = scores.shape as number[];
  let q = o.transpose(o.exp(o.div(stopGradient(o.g, scores), o.scalar('float32', epsilon))), [1, 0]);
  q = o.div(q, o.reduceSum(q, [], true));
  for (let i = 0; i < iterations; i++) {
    q = o.mul(q, o.div(o.scalar('float32', 1 / k), o.reduceSum(q, [1], true)));
    q = o.mul(q, o.div(o.scalar('float32', 1 / b), o.reduceSum(q, [0], true)));
  }
  return o.transpose(o.div(q, o.reduceSum(q, [0], true)), [1, 0]);
}

/**
 * Token-level alignment of MGCA (Wang et al. 2022, eq. 4-6) in one direction: each query token
 * (a word, or a patch) attends over the other modality's tokens (softmax of cosine / τ over the
 * keys, masked keys excluded), the normalised attended vectors are matched back to their queries
 * by cross-entropy over the report's queries (rows and columns), weighted per query.
 */
function tokenAlignment(
  o: Ops,
  queries: Value,
  keys: Value,
  keyBias: Value | undefined,
  queryBias: Value | undefined,
  weights: Value,
  tau: number,
): Value {
  const f = (v: number) => o.scalar('float32', v);
  let attended = o.matmul(queries, o.transpose(keys, [0, 2, 1])); // [B, Q, K]
  if (keyBias) attended = o.add(attended, keyBias);
  const summary = l2Normalize(o, o.matmul(o.softmax(o.div(attended, f(tau)), 2), keys)); // [B, Q, D]
  let sim = o.div(o.matmul(queries, o.transpose(summary, [0, 2, 1])), f(tau)); // [B, Q, Q]: query n1, summary n2
  // Padding queries are neither matched nor used as negatives.
  if (queryBias) sim = o.add(o.add(sim, queryBias), o.transpose(queryBias, [0, 2, 1]));
  const n = sim.shape[1] as number;
  const diagonal = eye(o, n);
  const batch = f(sim.shape[0] as number);
  const rows = o.reduceSum(o.mul(o.logSoftmax(sim, 2), diagonal), [2], false); // [B, Q] log p(n1 -> n1) over n2
  const cols = o.reduceSum(o.mul(o.logSoftmax(sim, 1), diagonal), [1], false); // [B, Q] log p(n2 -> n2) over n1
  const weighted = (logp: Value) => o.div(o.neg(o.reduceSum(o.mul(logp, weights), [], false)), batch);
  return o.div(o.add(weighted(rows), weighted(cols)), f(2));
}

/**
 * MGCA (Wang et al. 2022): instance-level image-report contrast (ITA), token-level cross-modal
 * alignment in both directions (words attend over patches, patches over words), and
 * disease-level alignment: both modalities' embeddings scored against learnable prototypes,
 * each modality's Sinkhorn-Knopp codes the target of the other's prototype softmax.
 * Word weights are uniform over each report's words (MGCA uses [CLS] attention; see
 * docs/pretrainer.md), patch weights uniform (as MGCA does for ResNet).
 */
export function mgcaLoss(o: Ops, x: MgcaInputs, options: MgcaOptions = {}): LossOutput {
  const f = (v: number) => o.scalar('float32', v);
  const tau = options.localTemperature ?? 0.1;
  const image = l2Normalize(o, x.image);
  const text = l2Normalize(o, x.text);
  const patches = l2Normalize(o, x.patches);
  const words = l2Normalize(o, x.words);

  const logits = o.div(o.matmul(image, o.transpose(text, [1, 0])), f(options.temperature ?? 0.07));
  const instance = o.add(diagonalCrossEntropy(o, logits, 1), diagonalCrossEntropy(o, logits, 0));

  const wordBias = o.mul(o.sub(f(1), x.wordMask), f(MASKED)); // [B, T]
  const wordWeights = o.div(x.wordMask, o.reduceSum(x.wordMask, [1], true));
  const p = x.patches.shape[1] as number;
  const patchWeights = o.const('float32', [1, p], new Array(p).fill(1 / p));
  const wordLoss = tokenAlignment(o, words, patches, undefined, o.unsqueeze(wordBias, [2]), wordWeights, tau);
  const patchLoss = tokenAlignment(o, patches, words, o.unsqueeze(wordBias, [1]), undefined, patchWeights, tau);
  const token = o.add(wordLoss, patchLoss);

  const prototypes = l2Normalize(o, x.prototypes);
  const imageScores = o.matmul(image, o.transpose(prototypes, [1, 0])); // [B, K]
  const textScores = o.matmul(text, o.transpose(prototypes, [1, 0]));
  const eps = options.sinkhornEpsilon ?? 0.05;
  const iterations = options.sinkhornIterations ?? 3;
  const imageCodes = sinkhornAssignments(o, imageScores, eps, iterations);
  const textCodes = sinkhornAssignments(o, textScores, eps, iterations);
  const protoTau = f(options.prototypeTemperature ?? 0.2);
  const crossEntropy = (codes: Value, scores: Value) =>
    o.neg(o.reduceMean(o.reduceSum(o.mul(codes, o.logSoftmax(o.div(scores, protoTau), 1)), [1], false), [], false));
  const prototype = o.div(o.add(crossEntropy(imageCodes, textScores), crossEntropy(textCodes, imageScores)), f(2));

  const loss = o.sum(
    o.mul(instance, f(options.instanceWeight ?? 1)),
    o.mul(token, f(options.tokenWeight ?? 1)),
    o.mul(prototype, f(options.prototypeWeight ?? 1)),
  );
  return { loss, parts: { instance, token, prototype, retrieval_top1: retrievalTop1(o, logits) } };
}
