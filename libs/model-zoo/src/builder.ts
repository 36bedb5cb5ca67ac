import { RNG_SEED_INPUT, ops, tensor, type GraphBuilder, type Ops, type Tensor, type Value } from '@medsyn/onnx-graph';
import { seededRandom, standardNormal, type Random } from '@medsyn/random';

/** What every model builder works with: the graph, its op helpers, seeded initialisation and the mode. */
export interface ModelBuilder {
  g: GraphBuilder;
  o: Ops;
  /** Uniform [0, 1) numbers from a seeded generator, for reproducible initial weights. */
  rand: Random;
  /** Training mode: BatchNorm uses batch statistics and updates its running statistics; dropout is active. */
  training: boolean;
  /** Dropout layers built so far (each draws its own random stream). */
  dropoutSites: number;
}

export function modelBuilder(g: GraphBuilder, options: { seed?: number; training?: boolean } = {}): ModelBuilder {
  return { g, o: ops(g), rand: seededRandom(options.seed ?? 0), training: options.training ?? false, dropoutSites: 0 };
}

/** U(-bound, bound) of the given shape. */
export function uniform(b: ModelBuilder, dims: number[], bound: number): Tensor {
  const data = new Float32Array(dims.reduce((a, c) => a * c, 1));
  for (let i = 0; i < data.length; i++) data[i] = (b.rand() * 2 - 1) * bound;
  return { dtype: 'float32', dims, data };
}

/** N(0, std) of the given shape (Box-Muller), truncated at 2 std like timm's trunc_normal_. */
export function normal(b: ModelBuilder, dims: number[], std: number): Tensor {
  const data = new Float32Array(dims.reduce((a, c) => a * c, 1));
  for (let i = 0; i < data.length; i++) {
    let z: number;
    do z = standardNormal(b.rand);
    while (Math.abs(z) > 2);
    data[i] = z * std;
  }
  return { dtype: 'float32', dims, data };
}

const filled = (dims: number[], value: number) =>
  tensor('float32', dims, new Array(dims.reduce((a, c) => a * c, 1)).fill(value));

/** torch.nn.Linear: weight [out, in] (PyTorch layout), y = x W^T + b; initialised like PyTorch (U(±1/√in)). */
export function linear(
  b: ModelBuilder,
  name: string,
  x: Value,
  inFeatures: number,
  outFeatures: number,
  options: { bias?: boolean } = {},
): Value {
  return b.g.scope(name, () => {
    const bound = 1 / Math.sqrt(inFeatures);
    const weight = b.g.parameter('weight', uniform(b, [outFeatures, inFeatures], bound));
    const bias = options.bias === false ? undefined : b.g.parameter('bias', uniform(b, [outFeatures], bound));
    if (x.shape.length === 2) return b.o.gemm(x, weight, bias, { transB: true });
    const y = b.o.matmul(x, b.o.transpose(weight, [1, 0]));
    return bias ? b.o.add(y, bias) : y;
  });
}

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
  dilation?: number;
  groups?: number;
  bias?: boolean;
}

/** torch.nn.Conv2d with square kernels: weight [out, in / groups, k, k]. */
export function conv2d(
  b: ModelBuilder,
  name: string,
  x: Value,
  inChannels: number,
  outChannels: number,
  kernel: number,
  options: Conv2dOptions = {},
): Value {
  return b.g.scope(name, () => {
    const groups = options.groups ?? 1;
    const bound = 1 / Math.sqrt((inChannels / groups) * kernel * kernel);
    const weight = b.g.parameter('weight', uniform(b, [outChannels, inChannels / groups, kernel, kernel], bound));
    const bias = options.bias === false ? undefined : b.g.parameter('bias', uniform(b, [outChannels], bound));
    const p = options.padding ?? 0;
    const s = options.stride ?? 1;
    const d = options.dilation ?? 1;
    return b.o.conv(x, weight, bias, { strides: [s, s], pads: [p, p, p, p], dilations: [d, d], group: groups });
  });
}

/**
 * torch.nn.BatchNorm2d: weight, bias, running_mean, running_var. torch's momentum m (weight of the
 * new batch) is ONNX's 1 - m (weight of the running value).
 */
export function batchNorm2d(
  b: ModelBuilder,
  name: string,
  x: Value,
  channels: number,
  options: { eps?: number; momentum?: number } = {},
): Value {
  return b.g.scope(name, () => {
    const weight = b.g.parameter('weight', filled([channels], 1));
    const bias = b.g.parameter('bias', filled([channels], 0));
    const mean = b.g.parameter('running_mean', filled([channels], 0), { trainable: false });
    const variance = b.g.parameter('running_var', filled([channels], 1), { trainable: false });
    const eps = options.eps ?? 1e-5;
    const momentum = 1 - (options.momentum ?? 0.1);
    if (!b.training) return b.o.batchNormalization(x, weight, bias, mean, variance, eps, momentum);
    const [y, nextMean, nextVar] = b.o.batchNormalizationTraining(x, weight, bias, mean, variance, eps, momentum);
    b.g.updateState(mean, nextMean);
    b.g.updateState(variance, nextVar);
    return y;
  });
}

/**
 * torch.nn.Dropout: in training mode a seeded, resumable mask (ops.dropout) drawn from the graph's
 * `rng_seed` input; identity in inference mode or at rate 0.
 */
export function dropout(b: ModelBuilder, x: Value, rate: number): Value {
  if (!b.training || rate <= 0) return x;
  const seed = b.g.hasValue(RNG_SEED_INPUT) ? b.g.value(RNG_SEED_INPUT) : b.g.input(RNG_SEED_INPUT, 'int64', []);
  return b.o.dropout(x, rate, seed, b.dropoutSites++);
}

/** torch.nn.LayerNorm over the last dimension. */
export function layerNorm(b: ModelBuilder, name: string, x: Value, dim: number, eps = 1e-5): Value {
  return b.g.scope(
    name,
    () =>
      b.o.layerNormalization(
        x,
        b.g.parameter('weight', filled([dim], 1)),
        b.g.parameter('bias', filled([dim], 0)),
        -1,
        eps,
      )[0],
  );
}

/** torch.nn.Embedding: weight [count, dim] ~ N(0, std); a lookup of integer ids. */
export function embedding(b: ModelBuilder, name: string, ids: Value, count: number, dim: number, std = 1): Value {
  return b.g.scope(name, () => b.o.gather(b.g.parameter('weight', normal(b, [count, dim], std)), ids, 0));
}

/**
 * Scaled dot-product attention over [batch, tokens, heads * headDim] queries, keys and values
 * (Vaswani et al. 2017): softmax(q k^T / sqrt(headDim) + bias) v, heads merged back.
 * `bias` (broadcastable to [batch, heads, tokens, tokens]) carries padding masks.
 */
export function attention(
  b: ModelBuilder,
  q: Value,
  k: Value,
  v: Value,
  heads: number,
  bias?: Value,
  dropoutRate = 0,
): Value {
  const { o } = b;
  const [, tokens, width] = q.shape;
  if (typeof width !== 'number' || width % heads !== 0)
    throw new Error(`attention width ${width} is not divisible by ${heads} heads`);
  const headDim = width / heads;
  const heads4d = (t: Value) => o.reshape(t, [0, 0, heads, headDim]);
  const split = (t: Value) => o.transpose(heads4d(t), [0, 2, 1, 3]);
  // Keys go straight to [batch, heads, headDim, tokens].
  let scores = o.mul(
    o.matmul(split(q), o.transpose(heads4d(k), [0, 2, 3, 1])),
    o.scalar('float32', 1 / Math.sqrt(headDim)),
  );
  if (bias) scores = o.add(scores, bias);
  const mixed = o.matmul(dropout(b, o.softmax(scores, -1), dropoutRate), split(v));
  return o.reshape(o.transpose(mixed, [0, 2, 1, 3]), [0, typeof tokens === 'number' ? tokens : 0, width]);
}
