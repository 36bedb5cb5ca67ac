import {
  GraphBuilder,
  RNG_SEED_INPUT,
  encodeModel,
  ops,
  tensor,
  type DType,
  type Tensor,
  type Value,
} from '@medsyn/onnx-graph';
import { gradients } from './autodiff';
import { createOptimizer, type OptimizerConfig } from './optimizers';

/** What a model definition returns when built into a training graph. */
export interface TrainingObjective {
  /** Scalar loss to minimise. */
  loss: Value;
  /** Other scalars to report each step (accuracy, loss parts...). */
  metrics?: Record<string, Value>;
}

export interface TrainingStepSpec {
  /** Builds inputs, forward pass and loss on g (parameters created with g.parameter). */
  build: (g: GraphBuilder) => TrainingObjective;
  optimizer: OptimizerConfig;
  /** Parameters to keep fixed, besides those created non-trainable (default: none). */
  freeze?: (parameterName: string) => boolean;
  /** Clip the global L2 norm of all gradients to this value (0 or absent: no clipping). */
  maxGradNorm?: number;
  /** Micro-batches whose mean gradient makes one optimizer step (default 1). */
  gradientAccumulation?: number;
}

/** Names of the scalar inputs every training step takes. */
export const LEARNING_RATE_INPUT = 'learning_rate';
export const STEP_INPUT = 'step';
export const LOSS_OUTPUT = 'loss';
export const GRAD_NORM_OUTPUT = 'grad_norm';
export const updatedName = (name: string) => `updated.${name}`;

/** One training step as a single ONNX graph, with the bookkeeping a runner needs. */
export interface TrainingStepGraph {
  /** The serialised ONNX model. */
  model: Uint8Array;
  /** Batch inputs (everything the caller feeds besides parameters, state, lr and step). */
  batchInputs: { name: string; dtype: DType; shape: readonly (number | string)[] }[];
  /** Every parameter and buffer the graph reads, with its initial value. */
  parameters: Map<string, { initial: Tensor; trainable: boolean }>;
  /** Optimizer state slots with their initial values. */
  optimizerState: Map<string, Tensor>;
  /** Names of the values the step returns updated (graph output `updated.<name>`). */
  updated: string[];
  metrics: string[];
  /** Present with gradientAccumulation > 1: the optimizer graph and its bookkeeping. */
  accumulation?: {
    microBatches: number;
    /** Gradient accumulators (zeros), inputs of `model`. */
    accumulators: Map<string, Tensor>;
    /** The optimizer step on the accumulated gradients. */
    apply: Uint8Array;
    /** What `apply` returns updated. */
    updated: string[];
  };
}

/**
 * forward + backward + optimizer update in one graph of standard ops. Inputs: the batch, every
 * parameter and buffer, the optimizer state, the learning rate and the 1-based step number.
 * Outputs: the loss, the metrics, the global gradient norm (before clipping), and updated
 * trainable parameters, buffers (e.g. BatchNorm running statistics) and optimizer state.
 *
 * With gradientAccumulation k > 1 the step is two graphs: `model` (forward + backward) adds each
 * micro-batch's gradients into accumulators (graph inputs `grad_acc.<name>`), and
 * `accumulation.apply` divides them by k and runs the optimizer, so k micro-batches make one
 * optimizer step on their mean gradient with the memory of one micro-batch.
 */
export function buildTrainingStep(spec: TrainingStepSpec): TrainingStepGraph {
  const micro = spec.gradientAccumulation ?? 1;
  if (!Number.isInteger(micro) || micro < 1)
    throw new Error(`gradientAccumulation must be a positive integer, got ${micro}`);
  const g = new GraphBuilder(micro > 1 ? 'accumulate_step' : 'training_step', { parametersAsInputs: true });
  const o = ops(g);
  const objective = spec.build(g);
  // The dropout seed is fed by the Trainer, not by the caller's batch.
  const batchInputs = g.inputs
    .filter((v) => !g.parameters.has(v.name) && v.name !== RNG_SEED_INPUT)
    .map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape }));
  const trainable = [...g.parameters.values()]
    .filter((p) => p.trainable && !spec.freeze?.(p.value.name))
    .map((p) => p.value);
  if (trainable.length === 0) throw new Error('nothing to train: every parameter is frozen');

  g.output(objective.loss, LOSS_OUTPUT);
  for (const [name, value] of Object.entries(objective.metrics ?? {})) g.output(value, name);
  const grads = gradients(g, objective.loss, trainable);
  const updated: string[] = [];
  for (const [name, next] of g.stateUpdates) {
    g.output(next, updatedName(name));
    updated.push(name);
  }
  const parameters = new Map(
    [...g.parameters].map(([name, p]) => [name, { initial: p.initial, trainable: trainable.includes(p.value) }]),
  );
  const result = { batchInputs, parameters, metrics: Object.keys(objective.metrics ?? {}) };

  if (micro === 1) {
    const optimizer = addOptimizer(g, trainable, grads, spec);
    return {
      ...result,
      model: encodeModel(g.toModelProto()),
      optimizerState: optimizer.state,
      updated: [...updated, ...optimizer.updated],
    };
  }

  const accumulators = new Map<string, Tensor>();
  for (const p of trainable) {
    const name = accumulatorName(p.name);
    accumulators.set(name, tensor(p.dtype, p.shape as number[]));
    g.output(o.add(g.input(name, p.dtype, p.shape), grads.get(p.name)!), updatedName(name));
    updated.push(name);
  }
  const apply = new GraphBuilder('apply_step');
  const applyOps = ops(apply);
  const applyParams = trainable.map((p) => apply.input(p.name, p.dtype, p.shape));
  const meanGrads = new Map(
    trainable.map((p) => [
      p.name,
      applyOps.div(apply.input(accumulatorName(p.name), p.dtype, p.shape), applyOps.scalar(p.dtype, micro)),
    ]),
  );
  const optimizer = addOptimizer(apply, applyParams, meanGrads, spec);
  return {
    ...result,
    model: encodeModel(g.toModelProto()),
    optimizerState: optimizer.state,
    updated,
    accumulation: {
      microBatches: micro,
      accumulators,
      apply: encodeModel(apply.toModelProto()),
      updated: optimizer.updated,
    },
  };
}

const accumulatorName = (parameter: string) => `grad_acc.${parameter}`;

/** Parameters up to this many elements share one optimizer update (see addOptimizer). */
const SMALL_PARAMETER = 16384;
const numel = (v: Value) => (v.shape as number[]).reduce((a, b) => a * b, 1);

/**
 * Appends global-norm clipping and the optimizer update to g, reading the learning rate and step
 * as graph inputs; outputs the gradient norm and the updated parameters and optimizer state.
 */
function addOptimizer(g: GraphBuilder, trainable: Value[], grads: Map<string, Value>, spec: TrainingStepSpec) {
  const o = ops(g);
  const dtype = trainable[0]!.dtype;
  const lr = g.input(LEARNING_RATE_INPUT, dtype, []);
  const step = g.input(STEP_INPUT, dtype, []);
  const updated: string[] = [];
  const state = new Map<string, Tensor>();
  g.scope('optimizer', () => {
    // The optimizers are elementwise, so small parameters (norm scales, biases) are updated as one
    // concatenated vector: a dozen nodes for all of them instead of a dozen each (ResNet-18: 928
    // optimizer nodes -> 259), where each node's dispatch cost more than its arithmetic.
    const small = trainable.filter((p) => numel(p) <= SMALL_PARAMETER);
    const grouped = small.length > 1 && small.every((p) => p.dtype === dtype) ? small : [];
    const single = trainable.filter((p) => !grouped.includes(p));
    const flat = (vs: Value[]) =>
      o.concat(
        vs.map((v) => o.reshape(v, [-1])),
        0,
      );
    const groupedGradient = grouped.length ? flat(grouped.map((p) => grads.get(p.name)!)) : undefined;
    // Global L2 norm over all gradients (torch.nn.utils.clip_grad_norm_): scale by min(1, max / (norm + 1e-6)).
    const squares = [...single.map((p) => grads.get(p.name)!), ...(groupedGradient ? [groupedGradient] : [])].map((v) =>
      o.reduceSumSquare(v, [], false),
    );
    const norm = o.sqrt(squares.length > 1 ? o.sum(...squares) : squares[0]!);
    g.output(norm, GRAD_NORM_OUTPUT);
    const scale = spec.maxGradNorm
      ? o.min(o.scalar(dtype, 1), o.div(o.scalar(dtype, spec.maxGradNorm), o.add(norm, o.scalar(dtype, 1e-6))))
      : undefined;
    const optimizer = createOptimizer(spec.optimizer);
    const scaled = (gradient: Value) => (scale ? o.mul(gradient, scale) : gradient);
    const stateOf = (p: Value) =>
      optimizer.stateSlots(p.name, p.shape as number[], p.dtype).map((slot) => {
        state.set(slot.name, slot.initial);
        return { name: slot.name, value: g.input(slot.name, slot.initial.dtype, slot.initial.dims) };
      });
    const emit = (p: Value, next: Value, slots: { name: string }[], nextState: Value[]) => {
      g.output(next, updatedName(p.name));
      updated.push(p.name);
      slots.forEach((slot, i) => {
        g.output(nextState[i]!, updatedName(slot.name));
        updated.push(slot.name);
      });
    };
    for (const p of single) {
      const slots = stateOf(p);
      const next = optimizer.update({
        o,
        g,
        parameter: p,
        gradient: scaled(grads.get(p.name)!),
        state: slots.map((s) => s.value),
        lr,
        step,
      });
      emit(p, next.parameter, slots, next.state);
    }
    if (groupedGradient) {
      const slots = grouped.map(stateOf);
      const sizes = grouped.map(numel);
      const unflat = (v: Value) =>
        o.split(v, sizes, 0).map((part, i) => o.reshape(part, grouped[i]!.shape as number[]));
      const next = optimizer.update({
        o,
        g,
        parameter: flat(grouped),
        gradient: scaled(groupedGradient),
        state: slots[0]!.map((_, k) => flat(slots.map((s) => s[k]!.value))),
        lr,
        step,
      });
      const parameters = unflat(next.parameter);
      const nextState = next.state.map(unflat);
      grouped.forEach((p, i) =>
        emit(
          p,
          parameters[i]!,
          slots[i]!,
          nextState.map((s) => s[i]!),
        ),
      );
    }
  });
  return { updated, state };
}
