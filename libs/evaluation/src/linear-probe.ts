import * as ort from 'onnxruntime-node';
import { GraphBuilder, attr, encodeModel, ops, type Ops, type Value } from '@medsyn/onnx-graph';
import { createSession, type ExecutionProvider } from '@medsyn/training';

/** Mean binary cross-entropy on logits, in the numerically stable form max(x,0) - x*y + log(1 + e^-|x|). */
export function bceWithLogits(o: Ops, logits: Value, target: Value): Value {
  const perEntry = o.add(
    o.sub(o.relu(logits), o.mul(logits, target)),
    o.log(o.add(o.scalar('float32', 1), o.exp(o.neg(o.abs(logits))))),
  );
  return perEntry;
}

/** Mean softmax cross-entropy over rows (one-hot targets [n, C]). */
export function softmaxCrossEntropy(o: Ops, logits: Value, target: Value): Value {
  return o.neg(o.reduceMean(o.reduceSum(o.mul(o.logSoftmax(logits), target), [1], false), [0], false));
}

export interface ProbeOptions {
  kind: 'multi-label' | 'multi-class';
  classes: number;
  /** L-BFGS iterations at most (default 1000); the fit usually converges long before. */
  epochs?: number;
  /**
   * Inverse L2 strength as scikit-learn's LogisticRegression `C` (default 1): the fit minimises
   * scikit-learn's objective, cross-entropy summed over images + ||W||^2 / (2 C).
   */
  C?: number;
  /**
   * Converged when no entry of that objective's gradient exceeds this (scikit-learn's `tol`,
   * default 1e-4, as its lbfgs solver applies it), or when an iteration lowers the objective by
   * at most 2.2e-9 of its value (scipy's L-BFGS-B default, which scikit-learn 1.2 keeps).
   */
  tolerance?: number;
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
  /** L-BFGS iterations the fit took. */
  bestEpoch: number;
  epochsRun: number;
  /** Loss and gradient evaluations made (one onnxruntime run each), for throughput figures. */
  steps: number;
}

function standardise(
  features: Float32Array,
  n: number,
  dim: number,
  mean: Float32Array,
  std: Float32Array,
): Float32Array {
  const out = new Float32Array(n * dim);
  for (let i = 0; i < n; i++)
    for (let d = 0; d < dim; d++) out[i * dim + d] = (features[i * dim + d]! - mean[d]!) / std[d]!;
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
    if (probe.kind === 'multi-label')
      for (let c = 0; c < classes; c++) scores[i * classes + c] = 1 / (1 + Math.exp(-scores[i * classes + c]!));
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
export function probeLoss(
  scores: Float32Array,
  targets: Float32Array,
  n: number,
  classes: number,
  kind: 'multi-label' | 'multi-class',
): number {
  const eps = 1e-7;
  let sum = 0;
  for (let i = 0; i < n * classes; i++) {
    const p = Math.min(1 - eps, Math.max(eps, scores[i]!));
    sum +=
      kind === 'multi-label'
        ? -(targets[i]! * Math.log(p) + (1 - targets[i]!) * Math.log(1 - p))
        : -targets[i]! * Math.log(p);
  }
  return kind === 'multi-label' ? sum / (n * classes) : sum / n;
}

/**
 * The data term of the probe's objective as one graph of standard ops, run by onnxruntime: for
 * logits Z = Θ [X 1]ᵀ ([classes, n]: features with a column of ones, so the bias is Θ's last
 * column), the summed cross-entropy (multi-label: Σ softplus(z) − y z, each class its own
 * logistic regression; multi-class: −Σ y log softmax(z) over classes) and its gradient in
 * closed form, (P − Y) [X 1] with P = sigmoid(Z) or softmax(Z) over classes (Bishop, PRML eq.
 * 4.91 and 4.109). Written out rather than derived by autodiff: 9 nodes instead of 46, and a
 * fit is ~100 runs of it. Classes lie along rows so that a binary probe's products are
 * vector-matrix ones (onnxruntime's M = 1 kernels: 2x faster than with a column of logits). The
 * loss is summed in float64: in float32 the sum's rounding (~1e-4 on 300 images) is larger than
 * the decreases the line search has to see near the optimum.
 */
function objectiveGraph(dim: number, classes: number, kind: 'multi-label' | 'multi-class'): Uint8Array {
  const g = new GraphBuilder('probe_objective');
  const o = ops(g);
  const design = g.input('design', 'float32', ['batch', dim + 1]);
  const target = g.input('target', 'float32', [classes, 'batch']);
  const theta = g.input('theta', 'float32', [classes, dim + 1]);
  const z = o.gemm(theta, design, undefined, { transB: true });
  const crossEntropy =
    kind === 'multi-label' ? o.sub(o.softplus(z), o.mul(target, z)) : o.neg(o.mul(target, o.logSoftmax(z, 0)));
  g.output(g.op('ReduceSum', [o.cast(crossEntropy, 'float64')], { keepdims: attr.int(0) }, { name: 'loss' }));
  g.output(
    g.op(
      'MatMul',
      [o.sub(kind === 'multi-label' ? o.sigmoid(z) : o.softmax(z, 0), target), design],
      {},
      { name: 'gradient' },
    ),
  );
  return encodeModel(g.toModelProto());
}

/**
 * Standardisation as a graph: the training features' per-feature mean and (population) standard
 * deviation, 0 taken as 1, and the design matrix [(X − mean) / std, 1], the objective's input:
 * one run instead of three O(images x features) passes in JavaScript.
 */
function designGraph(dim: number): Uint8Array {
  const g = new GraphBuilder('probe_design');
  const o = ops(g);
  const features = g.input('features', 'float32', ['batch', dim]);
  const mean = o.reduceMean(features, [0]);
  const centred = o.sub(features, mean);
  const spread = o.sqrt(o.reduceMean(o.mul(centred, centred), [0]));
  const std = o.where(o.equal(spread, o.scalar('float32', 0)), o.scalar('float32', 1), spread);
  g.output(mean, 'mean');
  g.output(std, 'std');
  g.output(g.op('Pad', [o.div(centred, std), o.ints([0, 0, 0, 1]), o.scalar('float32', 1)], {}, { name: 'design' }));
  return encodeModel(g.toModelProto());
}

function transpose(values: Float32Array, rows: number, columns: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < columns; c++) out[c * rows + r] = values[r * columns + c]!;
  return out;
}

/**
 * Compiled graphs by shape: an evaluation fits many probes of one shape (label fractions,
 * seeds), and building a graph and its session costs about as much as a fit's runs. Sessions
 * are stateless between runs and safe to share; at most 8 are kept, and one dropped from the
 * cache is freed by the garbage collector once no fit holds it (never released under a running fit).
 */
const sessions = new Map<string, Promise<ort.InferenceSession>>();

function cachedSession(
  shape: unknown[],
  graph: () => Uint8Array,
  executionProvider: ExecutionProvider,
  threads: number | undefined,
) {
  const key = JSON.stringify([...shape, executionProvider, threads]);
  let entry = sessions.get(key);
  if (!entry) {
    // A fit is ~130 runs of ~0.1 ms back to back: with threads that spin between them the bench's
    // fit took 0.0116 s (median of 8 runs) against 0.0124 s (of 4) with sleeping ones.
    entry = createSession(graph(), { executionProvider, intraOpThreads: threads, intraOpSpinning: true });
    // A failed creation (e.g. an execution provider this build lacks) is not kept.
    entry.catch(() => sessions.delete(key));
    sessions.set(key, entry);
    if (sessions.size > 8) sessions.delete(sessions.keys().next().value!);
  }
  return entry;
}

export interface LbfgsOptions {
  maxIterations: number;
  /** Converged when no gradient entry exceeds this (L-BFGS-B's `pgtol`, scikit-learn's `tol`). */
  tolerance: number;
  /**
   * Converged when an iteration lowers f by at most this fraction of max(|f|, 1) (L-BFGS-B's
   * `factr` times machine epsilon: scipy's default 1e7 ε, which scikit-learn 1.2 leaves as it is).
   */
  relativeDecrease?: number;
  memory?: number;
}

/**
 * Minimises f with L-BFGS (Nocedal & Wright, algorithm 7.4: two-loop recursion over the last
 * `memory` steps) and a backtracking line search, from x; stops on the tests scipy's L-BFGS-B
 * applies (gradient, relative decrease). f returns the value and writes the gradient into its
 * second argument. Every vector is allocated once: at ~100 iterations a fit, allocating them per
 * iteration cost as much as the two-loop recursion itself.
 */
export async function minimizeLbfgs(
  f: (x: Float64Array, gradient: Float64Array) => Promise<number>,
  start: Float64Array,
  options: LbfgsOptions,
): Promise<{ x: Float64Array; value: number; iterations: number; evaluations: number }> {
  const size = start.length;
  const memory = options.memory ?? 10;
  const relativeDecrease = options.relativeDecrease ?? 1e7 * Number.EPSILON;
  // The last `memory` pairs s = x' - x, y = g' - g, in a ring; `newest` is the latest's slot.
  const s = Array.from({ length: memory }, () => new Float64Array(size));
  const y = Array.from({ length: memory }, () => new Float64Array(size));
  const rho = new Float64Array(memory);
  const alpha = new Float64Array(memory);
  let pairs = 0;
  let newest = -1;
  let x = Float64Array.from(start);
  let candidate = new Float64Array(size);
  let gradient = new Float64Array(size);
  let nextGradient = new Float64Array(size);
  const direction = new Float64Array(size);
  let value = await f(x, gradient);
  let evaluations = 1;
  let iterations = 0;
  while (iterations < options.maxIterations && largest(gradient) > options.tolerance) {
    iterations++;
    // Two-loop recursion: direction = -H g, newest pair first, then oldest first.
    direction.set(gradient);
    for (let k = 0; k < pairs; k++) {
      const j = (newest - k + memory) % memory;
      alpha[j] = rho[j]! * dot(s[j]!, direction);
      axpy(-alpha[j]!, y[j]!, direction);
    }
    const gamma =
      pairs > 0
        ? 1 / (rho[newest]! * dot(y[newest]!, y[newest]!))
        : 1 / Math.max(1, Math.sqrt(dot(gradient, gradient)));
    for (let i = 0; i < size; i++) direction[i]! *= -gamma;
    for (let k = pairs - 1; k >= 0; k--) {
      const j = (newest - k + memory) % memory;
      axpy(-(alpha[j]! + rho[j]! * dot(y[j]!, direction)), s[j]!, direction);
    }
    let slope = dot(gradient, direction);
    if (slope >= 0) {
      // Not a descent direction (curvature lost to rounding): restart from steepest descent.
      pairs = 0;
      for (let i = 0; i < size; i++) direction[i] = -gradient[i]!;
      slope = dot(gradient, direction);
    }
    let step = 1;
    let nextValue = NaN;
    let decrease = NaN;
    let accepted = false;
    for (let tries = 0; tries < 40 && !accepted; tries++) {
      for (let i = 0; i < size; i++) candidate[i] = x[i]! + step * direction[i]!;
      nextValue = await f(candidate, nextGradient);
      evaluations++;
      const nextSlope = dot(nextGradient, direction);
      decrease = lineDecrease(value, nextValue, step, slope, nextSlope);
      accepted = decrease >= -1e-4 * step * slope; // Armijo
      // If not, back off to where the directional derivative, interpolated linearly, crosses zero (within [0.1, 0.5] of the step).
      if (!accepted) step *= nextSlope > slope ? Math.min(0.5, Math.max(0.1, slope / (slope - nextSlope))) : 0.5;
    }
    if (!accepted) break; // no decrease found at float32 resolution: as converged as it gets
    const slot = (newest + 1) % memory;
    let sy = 0;
    let yy = 0;
    for (let i = 0; i < size; i++) {
      const si = (s[slot]![i] = candidate[i]! - x[i]!);
      const yi = (y[slot]![i] = nextGradient[i]! - gradient[i]!);
      sy += si * yi;
      yy += yi * yi;
    }
    // Keep a pair only with positive curvature (s·y > ε y·y): H must stay positive definite.
    if (sy > Number.EPSILON * yy) {
      rho[slot] = 1 / sy;
      newest = slot;
      pairs = Math.min(pairs + 1, memory);
    }
    const scale = Math.max(Math.abs(value), Math.abs(nextValue), 1);
    [x, candidate] = [candidate, x];
    [gradient, nextGradient] = [nextGradient, gradient];
    value = nextValue;
    if (decrease <= relativeDecrease * scale) break;
  }
  return { x, value, iterations, evaluations };
}

/**
 * How much a line-search step lowered f. Below 1e-6 |f| a float32 objective's difference is
 * mostly rounding (~1e-7 |f|), above the decreases that Armijo's test and the stopping test (2e-9)
 * must see: there the decrease is read off the directional derivatives at both ends by the
 * trapezoid rule, exact on a quadratic, which float32 resolves (Hager & Zhang's approximate Wolfe
 * condition, CG_DESCENT 2005, with their epsilon of 1e-6).
 */
function lineDecrease(value: number, nextValue: number, step: number, slope: number, nextSlope: number): number {
  const measured = value - nextValue;
  return Math.abs(measured) > 1e-6 * Math.max(Math.abs(value), 1) ? measured : (-step * (slope + nextSlope)) / 2;
}

function dot(a: Float64Array, b: Float64Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!;
  return sum;
}

/** y += a x. */
function axpy(a: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < y.length; i++) y[i]! += a * x[i]!;
}

function largest(v: Float64Array): number {
  let max = 0;
  for (let i = 0; i < v.length; i++) max = Math.max(max, Math.abs(v[i]!));
  return max;
}

/**
 * One linear layer on frozen, standardised features: L2-regularised logistic regression (per
 * class for multi-label, multinomial for multi-class) fitted by full-batch L-BFGS to scikit-learn
 * 1.2's LogisticRegression(solver='lbfgs') objective and stopping tests, with the data term and
 * its gradient computed by onnxruntime. The validation set's loss is reported (onEpoch) once, at
 * the end.
 */
export async function trainLinearProbe(
  train: ProbeSet,
  validation: ProbeSet,
  dim: number,
  options: ProbeOptions,
): Promise<LinearProbe> {
  const { classes, kind } = options;
  if (train.n === 0) throw new RangeError('linear probe: no training images');
  if (train.features.length !== train.n * dim)
    throw new RangeError(
      `linear probe: ${train.features.length} feature values for ${train.n} images of dimension ${dim}`,
    );
  // A probe's runs are small matrix-vector products: one thread beats a pool's hand-offs until
  // the features are large (measured on 314 x 256 features with the earlier autodiff graph:
  // 0.6 ms a run on the default pool, 0.23 ms on one thread).
  const threads = train.n * dim * classes < 1 << 22 ? 1 : undefined;
  const executionProvider = options.executionProvider ?? 'cpu';
  const [designSession, objectiveSession] = await Promise.all([
    cachedSession(['design', dim], () => designGraph(dim), executionProvider, threads),
    cachedSession(
      ['objective', dim, classes, kind],
      () => objectiveGraph(dim, classes, kind),
      executionProvider,
      threads,
    ),
  ]);
  const standardised = await designSession.run({ features: new ort.Tensor('float32', train.features, [train.n, dim]) });
  const width = dim + 1;
  // Parameters as one vector, Θ [classes, dim + 1]: each class's weights, then its bias. The
  // feeds are made once; each run writes the parameters into the theta tensor's buffer.
  const theta = new Float32Array(classes * width);
  const feeds = {
    design: standardised.design!,
    target: new ort.Tensor('float32', transpose(train.targets, train.n, classes), [classes, train.n]),
    theta: new ort.Tensor('float32', theta, [classes, width]),
  };
  // The penalty ||W||^2 / (2C) (bias excluded) and its gradient W / C are added here: O(parameters)
  // bookkeeping, like the optimiser's own, against the graph's O(images x parameters).
  const inverseC = 1 / (options.C ?? 1);
  const objective = async (x: Float64Array, gradient: Float64Array) => {
    theta.set(x);
    const out = await objectiveSession.run(feeds);
    gradient.set(out.gradient!.data as Float32Array);
    let value = (out.loss!.data as Float64Array)[0]!;
    for (let c = 0; c < classes; c++) {
      for (let d = c * width; d < c * width + dim; d++) {
        value += 0.5 * inverseC * x[d]! * x[d]!;
        gradient[d]! += inverseC * x[d]!;
      }
    }
    return value;
  };
  const fit = await minimizeLbfgs(objective, new Float64Array(classes * width), {
    maxIterations: options.epochs ?? 1000,
    tolerance: options.tolerance ?? 1e-4,
  });
  const weight = new Float32Array(classes * dim);
  const bias = new Float32Array(classes);
  for (let c = 0; c < classes; c++) {
    weight.set(fit.x.subarray(c * width, c * width + dim), c * dim);
    bias[c] = fit.x[c * width + dim]!;
  }
  const [mean, std] = [standardised.mean!.data, standardised.std!.data] as Float32Array[];
  const probe: LinearProbe = {
    weight,
    bias,
    mean: mean!,
    std: std!,
    kind,
    classes,
    dim,
    bestEpoch: fit.iterations,
    epochsRun: fit.iterations,
    steps: fit.evaluations,
  };
  const evalSet = validation.n > 0 ? validation : train;
  options.onEpoch?.(
    fit.iterations,
    probeLoss(probeScores(probe, evalSet.features, evalSet.n), evalSet.targets, evalSet.n, classes, kind),
  );
  return probe;
}
