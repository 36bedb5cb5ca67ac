import { tensor, type GraphBuilder, type Ops, type Tensor, type Value } from '@medsyn/onnx-graph';

/** AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, as torch.optim.AdamW computes it. */
export interface AdamWConfig {
  kind: 'adamw';
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  weightDecay?: number;
}

/** SGD with momentum (and optional Nesterov, L2 weight decay), as torch.optim.SGD computes it with dampening 0. */
export interface SgdConfig {
  kind: 'sgd';
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export type OptimizerConfig = AdamWConfig | SgdConfig;

/** A per-parameter state slot of an optimizer (e.g. Adam's first moment). */
export interface StateSlot {
  /** Graph input name of the state, e.g. `adam.m.layer1.weight`. */
  name: string;
  initial: Tensor;
}

export interface UpdateInputs {
  o: Ops;
  g: GraphBuilder;
  parameter: Value;
  gradient: Value;
  /** Current state values, in the order stateSlots() lists them. */
  state: Value[];
  /** Learning rate (scalar). */
  lr: Value;
  /** 1-based step number (scalar float), for bias correction. */
  step: Value;
}

/** Builds one parameter's update: the new parameter and the new state values. */
export interface Optimizer {
  stateSlots(parameterName: string, shape: readonly number[], dtype: Value['dtype']): StateSlot[];
  update(inputs: UpdateInputs): { parameter: Value; state: Value[] };
}

export function createOptimizer(config: OptimizerConfig): Optimizer {
  return config.kind === 'adamw' ? adamW(config) : sgd(config);
}

function adamW(config: AdamWConfig): Optimizer {
  const beta1 = config.beta1 ?? 0.9;
  const beta2 = config.beta2 ?? 0.999;
  const epsilon = config.epsilon ?? 1e-8;
  const weightDecay = config.weightDecay ?? 0.01;
  // The step's scalars are built once per (lr, step) pair and shared by every parameter's update.
  const scalars = new Map<string, { sqrtBc2: Value; stepSize: Value; decay?: Value }>();
  const stepScalars = (o: Ops, dtype: Value['dtype'], lr: Value, step: Value) => {
    const key = `${lr.name} ${step.name} ${dtype}`;
    let shared = scalars.get(key);
    if (!shared) {
      const c = (x: number) => o.scalar(dtype, x);
      const bc1 = o.sub(c(1), o.pow(c(beta1), step));
      const bc2 = o.sub(c(1), o.pow(c(beta2), step));
      shared = {
        sqrtBc2: o.sqrt(bc2),
        stepSize: o.div(lr, bc1),
        decay: weightDecay ? o.sub(c(1), o.mul(lr, c(weightDecay))) : undefined,
      };
      scalars.set(key, shared);
    }
    return shared;
  };
  return {
    stateSlots: (name, shape, dtype) => [
      { name: `adamw.exp_avg.${name}`, initial: tensor(dtype, [...shape]) },
      { name: `adamw.exp_avg_sq.${name}`, initial: tensor(dtype, [...shape]) },
    ],
    update({ o, parameter: p, gradient: grad, state: [m, v], lr, step }) {
      const c = (x: number) => o.scalar(p.dtype, x);
      const m2 = o.add(o.mul(m!, c(beta1)), o.mul(grad, c(1 - beta1)));
      const v2 = o.add(o.mul(v!, c(beta2)), o.mul(o.mul(grad, grad), c(1 - beta2)));
      // torch: p *= 1 - lr*wd; p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), with bc_i = 1 - beta_i^step.
      const { sqrtBc2, stepSize, decay } = stepScalars(o, p.dtype, lr, step);
      const denom = o.add(o.div(o.sqrt(v2), sqrtBc2), c(epsilon));
      const decayed = decay ? o.mul(p, decay) : p;
      const next = o.sub(decayed, o.mul(stepSize, o.div(m2, denom)));
      return { parameter: next, state: [m2, v2] };
    },
  };
}

function sgd(config: SgdConfig): Optimizer {
  const momentum = config.momentum ?? 0;
  const weightDecay = config.weightDecay ?? 0;
  return {
    stateSlots: (name, shape, dtype) =>
      momentum ? [{ name: `sgd.momentum_buffer.${name}`, initial: tensor(dtype, [...shape]) }] : [],
    update({ o, parameter: p, gradient, state: [buffer], lr }) {
      const c = (x: number) => o.scalar(p.dtype, x);
      const grad = weightDecay ? o.add(gradient, o.mul(p, c(weightDecay))) : gradient;
      if (!momentum) return { parameter: o.sub(p, o.mul(lr, grad)), state: [] };
      // With dampening 0, a zero-initialised buffer gives torch's first step (buffer = grad).
      const next = o.add(o.mul(buffer!, c(momentum)), grad);
      const direction = config.nesterov ? o.add(grad, o.mul(next, c(momentum))) : next;
      return { parameter: o.sub(p, o.mul(lr, direction)), state: [next] };
    },
  };
}
