import { GraphBuilder, encodeModel, ops, type DType, type Tensor, type Value } from '@medsyn/onnx-graph';
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
}

/**
 * forward + backward + optimizer update in one graph of standard ops. Inputs: the batch, every
 * parameter and buffer, the optimizer state, the learning rate and the 1-based step number.
 * Outputs: the loss, the metrics, the global gradient norm (before clipping), and updated
 * trainable parameters, buffers (e.g. BatchNorm running statistics) and optimizer state.
 */
export function buildTrainingStep(spec: TrainingStepSpec): TrainingStepGraph {
  const g = new GraphBuilder('training_step', { parametersAsInputs: true });
  const o = ops(g);
  const objective = spec.build(g);
  const batchInputs = g.inputs.filter((v) => !g.parameters.has(v.name)).map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape }));
  const trainable = [...g.parameters.values()].filter((p) => p.trainable && !spec.freeze?.(p.value.name)).map((p) => p.value);
  if (trainable.length === 0) throw new Error('nothing to train: every parameter is frozen');
  const dtype = trainable[0]!.dtype;
  const lr = g.input(LEARNING_RATE_INPUT, dtype, []);
  const step = g.input(STEP_INPUT, dtype, []);

  g.output(objective.loss, LOSS_OUTPUT);
  for (const [name, value] of Object.entries(objective.metrics ?? {})) g.output(value, name);

  const grads = gradients(g, objective.loss, trainable);
  const updated: string[] = [];
  const optimizerState = new Map<string, Tensor>();
  g.scope('optimizer', () => {
    // Global L2 norm over all gradients (torch.nn.utils.clip_grad_norm_): scale by min(1, max / (norm + 1e-6)).
    const norm = o.sqrt(o.sum(...trainable.map((p) => o.reduceSumSquare(grads.get(p.name)!, [], false))));
    g.output(norm, GRAD_NORM_OUTPUT);
    const scale = spec.maxGradNorm ? o.min(o.scalar(dtype, 1), o.div(o.scalar(dtype, spec.maxGradNorm), o.add(norm, o.scalar(dtype, 1e-6)))) : undefined;
    const optimizer = createOptimizer(spec.optimizer);
    for (const p of trainable) {
      const gradient = scale ? o.mul(grads.get(p.name)!, scale) : grads.get(p.name)!;
      const slots = optimizer.stateSlots(p.name, p.shape as number[], p.dtype);
      const state = slots.map((slot) => {
        optimizerState.set(slot.name, slot.initial);
        return g.input(slot.name, slot.initial.dtype, slot.initial.dims);
      });
      const next = optimizer.update({ o, g, parameter: p, gradient, state, lr, step });
      g.output(next.parameter, updatedName(p.name));
      updated.push(p.name);
      slots.forEach((slot, i) => {
        g.output(next.state[i]!, updatedName(slot.name));
        updated.push(slot.name);
      });
    }
  });
  for (const [name, next] of g.stateUpdates) {
    g.output(next, updatedName(name));
    updated.push(name);
  }
  const parameters = new Map([...g.parameters].map(([name, p]) => [name, { initial: p.initial, trainable: trainable.includes(p.value) }]));
  return { model: encodeModel(g.toModelProto()), batchInputs, parameters, optimizerState, updated, metrics: Object.keys(objective.metrics ?? {}) };
}
