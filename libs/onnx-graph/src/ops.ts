import { onnxTypeOf, type DType } from './dtype';
import type { GraphBuilder } from './graph';
import { int64s, scalar, tensor } from './tensor';
import { attr, type Attrs, type Shape, type Value } from './value';

export interface ConvOptions {
  strides?: number[];
  /** ONNX order: [begin_0, begin_1, ..., end_0, end_1, ...]. */
  pads?: number[];
  dilations?: number[];
  group?: number;
}

export interface PoolOptions {
  kernel: number[];
  strides?: number[];
  pads?: number[];
  ceilMode?: boolean;
  /** AveragePool: count padding cells in the divisor (PyTorch's default is true). */
  countIncludePad?: boolean;
}

/** The int64 scalar graph input that seeds dropout; a Trainer feeds a fresh value every step. */
export const RNG_SEED_INPUT = 'rng_seed';

const windowAttrs = (o: ConvOptions & { kernel?: number[]; ceilMode?: boolean }): Attrs => {
  const a: Attrs = {};
  if (o.kernel) a.kernel_shape = attr.ints(o.kernel);
  if (o.strides) a.strides = attr.ints(o.strides);
  if (o.pads) a.pads = attr.ints(o.pads);
  if (o.dilations) a.dilations = attr.ints(o.dilations);
  if (o.group && o.group !== 1) a.group = attr.int(o.group);
  if (o.ceilMode) a.ceil_mode = attr.int(1);
  return a;
};

/**
 * Typed helpers for the ONNX operators medsyn uses, one line each: they fill in the operator's
 * attribute and constant-input conventions of opset 17 (e.g. ReduceSum's axes are an input,
 * ReduceMean's an attribute).
 */
export class Ops {
  private readonly int64Cache = new Map<string, Value>();

  constructor(readonly g: GraphBuilder) {}

  /** An int64 vector constant, shared by every node that asks for the same values. */
  ints(values: readonly number[]): Value {
    const key = values.join(',');
    let v = this.int64Cache.get(key);
    if (!v) {
      v = this.g.constant(int64s([...values]), 'ints');
      this.int64Cache.set(key, v);
    }
    return v;
  }

  scalar(dtype: DType, value: number): Value {
    return this.g.constant(scalar(dtype, value), 'scalar');
  }

  const(dtype: DType, dims: number[], values: ArrayLike<number>): Value {
    return this.g.constant(tensor(dtype, dims, values));
  }

  // Elementwise.
  add = (a: Value, b: Value) => this.g.op('Add', [a, b]);
  sub = (a: Value, b: Value) => this.g.op('Sub', [a, b]);
  mul = (a: Value, b: Value) => this.g.op('Mul', [a, b]);
  div = (a: Value, b: Value) => this.g.op('Div', [a, b]);
  pow = (a: Value, b: Value) => this.g.op('Pow', [a, b]);
  max = (...xs: Value[]) => this.g.op('Max', xs);
  min = (...xs: Value[]) => this.g.op('Min', xs);
  sum = (...xs: Value[]) => (xs.length === 1 ? xs[0]! : this.g.op('Sum', xs));
  neg = (x: Value) => this.g.op('Neg', [x]);
  exp = (x: Value) => this.g.op('Exp', [x]);
  log = (x: Value) => this.g.op('Log', [x]);
  abs = (x: Value) => this.g.op('Abs', [x]);
  sign = (x: Value) => this.g.op('Sign', [x]);
  tanh = (x: Value) => this.g.op('Tanh', [x]);
  sigmoid = (x: Value) => this.g.op('Sigmoid', [x]);
  softplus = (x: Value) => this.g.op('Softplus', [x]);
  relu = (x: Value) => this.g.op('Relu', [x]);
  leakyRelu = (x: Value, alpha = 0.01) => this.g.op('LeakyRelu', [x], { alpha: attr.float(alpha) });
  erf = (x: Value) => this.g.op('Erf', [x]);
  sqrt = (x: Value) => this.g.op('Sqrt', [x]);
  reciprocal = (x: Value) => this.g.op('Reciprocal', [x]);
  identity = (x: Value) => this.g.op('Identity', [x]);
  equal = (a: Value, b: Value) => this.g.op('Equal', [a, b]);
  less = (a: Value, b: Value) => this.g.op('Less', [a, b]);
  greater = (a: Value, b: Value) => this.g.op('Greater', [a, b]);
  not = (x: Value) => this.g.op('Not', [x]);
  where = (condition: Value, a: Value, b: Value) => this.g.op('Where', [condition, a, b]);
  cast = (x: Value, to: DType) => (x.dtype === to ? x : this.g.op('Cast', [x], { to: attr.int(onnxTypeOf(to)) }));
  clip = (x: Value, min?: Value, max?: Value) => this.g.op('Clip', [x, min, max]);

  /** GELU, exact form: x * Φ(x) = 0.5 x (1 + erf(x / √2)). */
  gelu(x: Value): Value {
    const half = this.scalar(x.dtype, 0.5);
    const one = this.scalar(x.dtype, 1);
    const invSqrt2 = this.scalar(x.dtype, Math.SQRT1_2);
    return this.mul(this.mul(x, half), this.add(one, this.erf(this.mul(x, invSqrt2))));
  }

  // Linear algebra.
  matmul = (a: Value, b: Value) => this.g.op('MatMul', [a, b]);
  gemm = (
    a: Value,
    b: Value,
    c?: Value,
    o: { alpha?: number; beta?: number; transA?: boolean; transB?: boolean } = {},
  ) => {
    const attrs: Attrs = {};
    if (o.alpha !== undefined) attrs.alpha = attr.float(o.alpha);
    if (o.beta !== undefined) attrs.beta = attr.float(o.beta);
    if (o.transA) attrs.transA = attr.int(1);
    if (o.transB) attrs.transB = attr.int(1);
    return this.g.op('Gemm', [a, b, c], attrs);
  };

  // Reductions over axes; [] means all axes. Opset 17: ReduceSum takes axes as an input, the
  // others as an attribute (omitted, not empty, for all axes: the checker rejects empty ints).
  reduceSum = (x: Value, axes: number[], keepdims = true) =>
    this.g.op('ReduceSum', [x, axes.length ? this.ints(axes) : undefined], { keepdims: attr.int(keepdims ? 1 : 0) });
  private reduceWithAxesAttribute = (op: string, x: Value, axes: number[], keepdims: boolean) =>
    this.g.op(op, [x], { ...(axes.length ? { axes: attr.ints(axes) } : {}), keepdims: attr.int(keepdims ? 1 : 0) });
  reduceMean = (x: Value, axes: number[], keepdims = true) =>
    this.reduceWithAxesAttribute('ReduceMean', x, axes, keepdims);
  reduceMax = (x: Value, axes: number[], keepdims = true) =>
    this.reduceWithAxesAttribute('ReduceMax', x, axes, keepdims);
  reduceSumSquare = (x: Value, axes: number[], keepdims = true) =>
    this.reduceWithAxesAttribute('ReduceSumSquare', x, axes, keepdims);
  argMax = (x: Value, axis: number, keepdims = false) =>
    this.g.op('ArgMax', [x], { axis: attr.int(axis), keepdims: attr.int(keepdims ? 1 : 0) });

  // Shape manipulation.
  /** Reshape to a static target, or to a run-time shape value (then give the resulting shape). */
  reshape(x: Value, target: readonly number[] | Value, resultShape?: Shape): Value {
    if (Array.isArray(target)) return this.g.op('Reshape', [x, this.ints(target as number[])]);
    return this.g.op(
      'Reshape',
      [x, target as Value],
      {},
      {
        outputTypes: [{ dtype: x.dtype, shape: resultShape ?? fail('reshape to a run-time shape needs resultShape') }],
      },
    );
  }
  flatten = (x: Value, axis = 1) => this.g.op('Flatten', [x], { axis: attr.int(axis) });
  transpose = (x: Value, perm: number[]) => this.g.op('Transpose', [x], { perm: attr.ints(perm) });
  squeeze = (x: Value, axes: number[]) => this.g.op('Squeeze', [x, this.ints(axes)]);
  unsqueeze = (x: Value, axes: number[]) => this.g.op('Unsqueeze', [x, this.ints(axes)]);
  /** Broadcast to a static shape, or to a run-time shape value (then give the resulting shape). */
  expand(x: Value, target: readonly number[] | Value, resultShape?: Shape): Value {
    if (Array.isArray(target)) return this.g.op('Expand', [x, this.ints(target as number[])]);
    return this.g.op(
      'Expand',
      [x, target as Value],
      {},
      { outputTypes: [{ dtype: x.dtype, shape: resultShape ?? fail('expand to a run-time shape needs resultShape') }] },
    );
  }
  concat = (xs: Value[], axis: number) => this.g.op('Concat', xs, { axis: attr.int(axis) });
  split = (x: Value, sizes: number[], axis: number) =>
    this.g.node('Split', [x, this.ints(sizes)], { axis: attr.int(axis) }, { outputs: sizes.length });
  slice = (x: Value, starts: number[], ends: number[], axes?: number[], steps?: number[]) =>
    this.g.op('Slice', [
      x,
      this.ints(starts),
      this.ints(ends),
      axes ? this.ints(axes) : undefined,
      steps ? this.ints(steps) : undefined,
    ]);
  gather = (x: Value, indices: Value, axis = 0) => this.g.op('Gather', [x, indices], { axis: attr.int(axis) });
  pad = (x: Value, pads: number[], mode: 'constant' | 'reflect' | 'edge' = 'constant') =>
    this.g.op('Pad', [x, this.ints(pads)], mode === 'constant' ? {} : { mode: attr.string(mode) });
  shape = (x: Value) => this.g.op('Shape', [x]);
  /** A tensor of x's shape (known at run time) filled with value. */
  fillLike(x: Value, value: number): Value {
    return this.g.op(
      'ConstantOfShape',
      [this.shape(x)],
      { value: attr.tensor(tensor(x.dtype, [1], [value])) },
      { outputTypes: [{ dtype: x.dtype, shape: x.shape }] },
    );
  }
  zerosLike = (x: Value) => this.fillLike(x, 0);
  scatterND = (data: Value, indices: Value, updates: Value, reduction?: 'add') =>
    this.g.op('ScatterND', [data, indices, updates], reduction ? { reduction: attr.string(reduction) } : {});
  scatterElements = (data: Value, indices: Value, updates: Value, axis = 0, reduction?: 'add') =>
    this.g.op('ScatterElements', [data, indices, updates], {
      axis: attr.int(axis),
      ...(reduction ? { reduction: attr.string(reduction) } : {}),
    });

  // Neural-network operators.
  conv = (x: Value, w: Value, b: Value | undefined, o: ConvOptions = {}) =>
    this.g.op('Conv', [x, w, b], windowAttrs(o));
  convTranspose = (x: Value, w: Value, b: Value | undefined, o: ConvOptions & { outputPadding?: number[] } = {}) =>
    this.g.op('ConvTranspose', [x, w, b], {
      ...windowAttrs(o),
      ...(o.outputPadding ? { output_padding: attr.ints(o.outputPadding) } : {}),
    });
  maxPool = (x: Value, o: PoolOptions) => this.g.op('MaxPool', [x], windowAttrs(o));
  maxPoolWithIndices = (x: Value, o: PoolOptions) =>
    this.g.node('MaxPool', [x], windowAttrs(o), { outputs: 2 }) as [Value, Value];
  averagePool = (x: Value, o: PoolOptions) =>
    this.g.op('AveragePool', [x], {
      ...windowAttrs(o),
      ...(o.countIncludePad ? { count_include_pad: attr.int(1) } : {}),
    });
  globalAveragePool = (x: Value) => this.g.op('GlobalAveragePool', [x]);
  softmax = (x: Value, axis = -1) => this.g.op('Softmax', [x], { axis: attr.int(axis) });
  logSoftmax = (x: Value, axis = -1) => this.g.op('LogSoftmax', [x], { axis: attr.int(axis) });
  /**
   * LayerNormalization (opset 17) with its saved Mean and InvStdDev outputs. A missing bias is
   * given as zeros: onnxruntime 1.30's CPU kernel crashes (segfault) without one.
   */
  layerNormalization(
    x: Value,
    scale: Value,
    bias: Value | undefined,
    axis = -1,
    epsilon = 1e-5,
  ): [Value, Value, Value] {
    const b = bias ?? this.g.constant(tensor(scale.dtype, scale.shape as number[]), 'ln_zero_bias');
    return this.g.node(
      'LayerNormalization',
      [x, scale, b],
      { axis: attr.int(axis), epsilon: attr.float(epsilon) },
      { outputs: 3 },
    ) as [Value, Value, Value];
  }
  batchNormalization = (
    x: Value,
    scale: Value,
    bias: Value,
    mean: Value,
    variance: Value,
    epsilon = 1e-5,
    momentum = 0.9,
  ) =>
    this.g.op('BatchNormalization', [x, scale, bias, mean, variance], {
      epsilon: attr.float(epsilon),
      momentum: attr.float(momentum),
    });

  /**
   * BatchNormalization in training mode with PyTorch's semantics: normalises with the batch's
   * mean and biased variance and returns the new running mean and variance,
   * running = m * old + (1 - m) * batch, with the unbiased batch variance as PyTorch blends it.
   * `momentum` is ONNX's: the weight of the old running value (PyTorch's 0.1 is 0.9 here).
   *
   * The batch statistics are computed here and fed to an inference-mode BatchNormalization
   * (autodiff differentiates through them), rather than using training_mode = 1: onnxruntime
   * 1.30's training-mode kernel blends the biased variance, and with an in-place consumer of its
   * output (a Relu) its input was measured corrupted for other readers.
   */
  batchNormalizationTraining(
    x: Value,
    scale: Value,
    bias: Value,
    mean: Value,
    variance: Value,
    epsilon = 1e-5,
    momentum = 0.9,
  ): [Value, Value, Value] {
    const axes = [0, ...x.shape.slice(2).map((_, i) => i + 2)];
    const batchMean = this.reduceMean(x, axes, false);
    const centered = this.sub(x, this.reshape(batchMean, [1, -1, ...axes.slice(1).map(() => 1)]));
    const batchVariance = this.reduceMean(this.mul(centered, centered), axes, false);
    const y = this.batchNormalization(x, scale, bias, batchMean, batchVariance, epsilon, momentum);
    // Lets autodiff use the fused batch-statistics gradient instead of differentiating the
    // statistics' nodes one by one (fewer passes over the activations).
    this.g.annotations.set(this.g.producerOf(y).name, { batchStatistics: true });
    const perChannel = x.shape.every((d) => typeof d === 'number')
      ? this.scalar(x.dtype, (x.shape as number[]).reduce((a, b) => a * b, 1) / (x.shape[1] as number))
      : this.div(this.cast(this.g.op('Size', [x]), x.dtype), this.cast(this.slice(this.shape(x), [1], [2]), x.dtype));
    const unbiased = this.mul(batchVariance, this.div(perChannel, this.sub(perChannel, this.scalar(x.dtype, 1))));
    const blend = (old: Value, batch: Value) =>
      this.add(this.mul(old, this.scalar(x.dtype, momentum)), this.mul(batch, this.scalar(x.dtype, 1 - momentum)));
    return [y, blend(mean, batchMean), blend(variance, unbiased)];
  }

  /**
   * Inverted dropout with a counter-based random stream, so that the masks depend only on
   * (seed, site, element index): a resumed run draws the same masks as an uninterrupted one, on
   * any execution provider. Standard ops only (opset 17 has no bitwise ops), in int64: each
   * element's counter goes through two non-linear rounds x <- x^2 + c mod (2^31 - 1), which break
   * the lattice structure consecutive counters would keep, then a Park-Miller step (48271 x).
   * `seed` is an int64 scalar (the Trainer feeds one per step); `site` tells dropout layers apart.
   */
  dropout(x: Value, rate: number, seed: Value, site: number): Value {
    if (rate <= 0) return x;
    if (rate >= 1) throw new Error(`dropout rate must be below 1, got ${rate}`);
    const modulus = this.g.constant(tensor('int64', [], [2147483647]), 'minstd_modulus');
    const multiplier = this.g.constant(tensor('int64', [], [48271]), 'minstd_multiplier');
    const count = x.shape.every((d) => typeof d === 'number')
      ? (x.shape as number[]).reduce((a, b) => a * b, 1)
      : undefined;
    const size =
      count !== undefined ? this.g.constant(tensor('int64', [], [count]), 'dropout_count') : this.g.op('Size', [x]);
    const index = this.g.op(
      'Range',
      [
        this.g.constant(tensor('int64', [], [0]), 'zero_i64'),
        size,
        this.g.constant(tensor('int64', [], [1]), 'one_i64'),
      ],
      {},
      { outputTypes: [{ dtype: 'int64', shape: [count ?? this.g.uniqueName('dropout_elements')] }] },
    );
    // Non-zero starting states per element; the seed and the site enter every non-linear round,
    // so each (seed, site) is a different function of the counter, not a shifted copy of one stream.
    let state = this.add(
      this.g.op('Mod', [index, this.g.constant(tensor('int64', [], [2147483646]), 'minstd_range')]),
      this.g.constant(tensor('int64', [], [1]), 'one_i64'),
    );
    const increment = this.add(
      this.g.op('Mod', [seed, modulus]),
      this.g.constant(tensor('int64', [], [40503 + site * 7919]), 'mix_increment'),
    );
    for (let i = 0; i < 2; i++) state = this.g.op('Mod', [this.add(this.mul(state, state), increment), modulus]);
    state = this.g.op('Mod', [this.mul(state, multiplier), modulus]);
    const uniform = this.div(this.cast(state, x.dtype), this.scalar(x.dtype, 2147483647));
    const keep = this.cast(this.greater(uniform, this.scalar(x.dtype, rate)), x.dtype);
    const mask = x.shape.every((d) => typeof d === 'number')
      ? this.reshape(keep, x.shape as number[])
      : this.reshape(keep, this.shape(x), x.shape);
    return this.mul(x, this.mul(mask, this.scalar(x.dtype, 1 / (1 - rate))));
  }

  resize = (x: Value, scales: number[], mode: 'nearest' | 'linear') =>
    this.g.op('Resize', [x, undefined, this.g.constant(tensor('float32', [scales.length], scales), 'scales')], {
      mode: attr.string(mode),
      ...(mode === 'nearest'
        ? { nearest_mode: attr.string('floor'), coordinate_transformation_mode: attr.string('asymmetric') }
        : { coordinate_transformation_mode: attr.string('half_pixel') }),
    });
}

function fail(message: string): never {
  throw new Error(message);
}

/** Op helpers over a graph (one Ops per graph, so its constants are shared). */
export function ops(g: GraphBuilder): Ops {
  let o = cache.get(g);
  if (!o) cache.set(g, (o = new Ops(g)));
  return o;
}
const cache = new WeakMap<GraphBuilder, Ops>();
