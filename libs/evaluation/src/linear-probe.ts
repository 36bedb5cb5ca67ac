import * as ort from 'onnxruntime-node';
import { GraphBuilder, encodeModel, type Ops, type Value } from '@medsyn/onnx-graph';
import { linear, modelBuilder } from '@medsyn/model-zoo';
import { createSession, gradients, type ExecutionProvider } from '@medsyn/training';

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
  /** L-BFGS iterations at most (default 1000); the fit usually converges long before. */
  epochs?: number;
  /**
   * Inverse L2 strength as scikit-learn's LogisticRegression `C` (default 1): the fit minimises
   * mean cross-entropy + ||W||^2 / (2 C n), the same minimiser as scikit-learn's objective.
   */
  C?: number;
  /** Converged when no gradient entry exceeds this (scikit-learn's `tol`, default 1e-4). */
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
 * The probe's objective as one graph of standard ops, run by onnxruntime: mean cross-entropy of
 * the linear layer on the features (summed over classes for multi-label: each class its own
 * logistic regression) plus lambda/2 ||W||^2 (the bias is not penalised), and its gradient.
 */
function objectiveGraph(dim: number, classes: number, kind: 'multi-label' | 'multi-class') {
  const g = new GraphBuilder('probe_objective', { parametersAsInputs: true });
  const b = modelBuilder(g, { seed: 0, training: true });
  const o = b.o;
  const logits = linear(b, 'fc', g.input('features', 'float32', ['batch', dim]), dim, classes);
  const target = g.input('target', 'float32', ['batch', classes]);
  const lambda = g.input('lambda', 'float32', []);
  const fit = kind === 'multi-label' ? o.reduceSum(o.reduceMean(bceWithLogits(o, logits, target), [0], false), [0], false) : softmaxCrossEntropy(o, logits, target);
  const [weight, bias] = [...g.parameters.values()].map((p) => p.value) as [Value, Value];
  const loss = o.add(fit, o.mul(o.mul(o.scalar('float32', 0.5), lambda), o.reduceSumSquare(weight, [], false)));
  g.output(loss, 'loss');
  const grads = gradients(g, loss, [weight, bias]);
  g.output(grads.get(weight.name)!, 'grad_weight');
  g.output(grads.get(bias.name)!, 'grad_bias');
  return { model: encodeModel(g.toModelProto()), weightName: weight.name, biasName: bias.name };
}

/**
 * Compiled objectives by shape: an evaluation fits many probes of one shape (label fractions,
 * seeds), and building the graph and its session costs about as much as a fit's runs. Sessions
 * are stateless between runs and safe to share; at most 8 are kept, and one dropped from the
 * cache is freed by the garbage collector once no fit holds it (never released under a running fit).
 */
const objectiveSessions = new Map<string, Promise<{ graph: ReturnType<typeof objectiveGraph>; session: ort.InferenceSession }>>();

function objectiveSession(dim: number, classes: number, kind: 'multi-label' | 'multi-class', executionProvider: ExecutionProvider, threads: number | undefined) {
  const key = JSON.stringify([dim, classes, kind, executionProvider, threads]);
  let entry = objectiveSessions.get(key);
  if (!entry) {
    const graph = objectiveGraph(dim, classes, kind);
    entry = createSession(graph.model, { executionProvider, intraOpThreads: threads }).then((session) => ({ graph, session }));
    // A failed creation (e.g. an execution provider this build lacks) is not kept.
    entry.catch(() => objectiveSessions.delete(key));
    objectiveSessions.set(key, entry);
    if (objectiveSessions.size > 8) objectiveSessions.delete(objectiveSessions.keys().next().value!);
  }
  return entry;
}

/**
 * Minimises f with L-BFGS (Nocedal & Wright, algorithm 7.4: two-loop recursion over the last
 * `memory` steps) and a backtracking line search on the Armijo condition, from x.
 */
export async function minimizeLbfgs(
  f: (x: Float64Array) => Promise<{ value: number; gradient: Float64Array }>,
  x: Float64Array,
  options: { maxIterations: number; tolerance: number; memory?: number },
): Promise<{ x: Float64Array; value: number; iterations: number; evaluations: number }> {
  const memory = options.memory ?? 10;
  const dot = (a: Float64Array, b: Float64Array) => a.reduce((sum, v, i) => sum + v * b[i]!, 0);
  const history: { s: Float64Array; y: Float64Array; rho: number }[] = [];
  let current = await f(x);
  let evaluations = 1;
  let iterations = 0;
  while (iterations < options.maxIterations && current.gradient.reduce((m, v) => Math.max(m, Math.abs(v)), 0) > options.tolerance) {
    iterations++;
    // Two-loop recursion: direction = -H g.
    const q = Float64Array.from(current.gradient);
    const alphas: number[] = [];
    for (let k = history.length - 1; k >= 0; k--) {
      const { s, y, rho } = history[k]!;
      const a = rho * dot(s, q);
      alphas[k] = a;
      for (let i = 0; i < q.length; i++) q[i]! -= a * y[i]!;
    }
    const last = history[history.length - 1];
    const gamma = last ? dot(last.s, last.y) / dot(last.y, last.y) : 1 / Math.max(1, Math.sqrt(dot(current.gradient, current.gradient)));
    for (let i = 0; i < q.length; i++) q[i]! *= gamma;
    for (let k = 0; k < history.length; k++) {
      const { s, y, rho } = history[k]!;
      const beta = rho * dot(y, q);
      for (let i = 0; i < q.length; i++) q[i]! += s[i]! * (alphas[k]! - beta);
    }
    const direction = q.map((v) => -v);
    let slope = dot(current.gradient, direction);
    if (slope >= 0) {
      // Not a descent direction (curvature lost to rounding): restart from steepest descent.
      history.length = 0;
      for (let i = 0; i < direction.length; i++) direction[i] = -current.gradient[i]!;
      slope = dot(current.gradient, direction);
    }
    let step = 1;
    let next: { value: number; gradient: Float64Array } | undefined;
    let candidate = x;
    for (let tries = 0; tries < 40; tries++) {
      candidate = x.map((v, i) => v + step * direction[i]!);
      next = await f(candidate);
      evaluations++;
      if (next.value <= current.value + 1e-4 * step * slope) break;
      step /= 2;
      next = undefined;
    }
    if (!next) break; // no decrease found at float32 resolution: as converged as it gets
    const s = candidate.map((v, i) => v - x[i]!);
    const y = next.gradient.map((v, i) => v - current.gradient[i]!);
    const sy = dot(s, y);
    if (sy > 1e-10) {
      history.push({ s, y, rho: 1 / sy });
      if (history.length > memory) history.shift();
    }
    const decrease = current.value - next.value;
    x = candidate;
    current = next;
    if (decrease <= 1e-9 * Math.max(1, Math.abs(current.value))) break;
  }
  return { x, value: current.value, iterations, evaluations };
}

/**
 * One linear layer on frozen, standardised features: L2-regularised logistic regression (per
 * class for multi-label, multinomial for multi-class) fitted by full-batch L-BFGS, as
 * scikit-learn's LogisticRegression does, with the loss and gradient computed by onnxruntime.
 * The validation set's loss is reported (onEpoch) once, at the end.
 */
export async function trainLinearProbe(train: ProbeSet, validation: ProbeSet, dim: number, options: ProbeOptions): Promise<LinearProbe> {
  const { classes, kind } = options;
  if (train.n === 0) throw new RangeError('linear probe: no training images');
  if (train.features.length !== train.n * dim) throw new RangeError(`linear probe: ${train.features.length} feature values for ${train.n} images of dimension ${dim}`);
  const { mean, std } = featureStatistics(train.features, train.n, dim);
  // A probe's runs are small matrix-vector products: one thread beats a pool's hand-offs until
  // the features are large (measured: 314 x 256 features, 0.6 ms a run on the default pool, 0.23 ms on one thread).
  const threads = train.n * dim * classes < 1 << 22 ? 1 : undefined;
  const { graph, session } = await objectiveSession(dim, classes, kind, options.executionProvider ?? 'cpu', threads);
  const lambda = 1 / ((options.C ?? 1) * train.n);
  const fixed = {
    features: new ort.Tensor('float32', standardise(train.features, train.n, dim, mean, std), [train.n, dim]),
    target: new ort.Tensor('float32', train.targets, [train.n, classes]),
    lambda: new ort.Tensor('float32', Float32Array.of(lambda), []),
  };
  const weights = classes * dim;
  // Parameters as one vector: the weight [classes, dim] then the bias [classes].
  const objective = async (x: Float64Array) => {
    const out = await session.run({
      ...fixed,
      [graph.weightName]: new ort.Tensor('float32', Float32Array.from(x.subarray(0, weights)), [classes, dim]),
      [graph.biasName]: new ort.Tensor('float32', Float32Array.from(x.subarray(weights)), [classes]),
    });
    const gradient = new Float64Array(weights + classes);
    gradient.set(out.grad_weight!.data as Float32Array);
    gradient.set(out.grad_bias!.data as Float32Array, weights);
    return { value: (out.loss!.data as Float32Array)[0]!, gradient };
  };
  const fit = await minimizeLbfgs(objective, new Float64Array(weights + classes), { maxIterations: options.epochs ?? 1000, tolerance: options.tolerance ?? 1e-4 });
  const probe: LinearProbe = { weight: Float32Array.from(fit.x.subarray(0, weights)), bias: Float32Array.from(fit.x.subarray(weights)), mean, std, kind, classes, dim, bestEpoch: fit.iterations, epochsRun: fit.iterations, steps: fit.evaluations };
  const evalSet = validation.n > 0 ? validation : train;
  options.onEpoch?.(fit.iterations, probeLoss(probeScores(probe, evalSet.features, evalSet.n), evalSet.targets, evalSet.n, classes, kind));
  return probe;
}
