import { attr, ops, tensor, type GraphBuilder, type Value } from '@medsyn/onnx-graph';
import { GRADIENTS } from '../src';
import { gradCheck, type GradCase } from './gradcheck';

/** Away from 0, where Relu, Abs and friends have kinks that finite differences straddle. */
const awayFromZero = (_: string, rand: () => number) => (rand() < 0.5 ? -1 : 1) * (0.2 + rand());
const positive = (_: string, rand: () => number) => 0.5 + rand();
/** Values at least 0.1 apart (a shuffled grid), so that a finite-difference step never changes which element is a maximum. */
const distinct = () => {
  let k = 0;
  return () => (((k++ * 37) % 101) - 50) / 10;
};

const unary = (op: (o: ReturnType<typeof ops>, x: Value) => Value, extra: Partial<GradCase> = {}): GradCase => ({
  inputs: { x: [3, 4] },
  build: (g, { x }) => op(ops(g), x!),
  ...extra,
});

const CASES: Record<string, GradCase[]> = {
  Identity: [unary((o, x) => o.identity(x))],
  Add: [{ inputs: { a: [2, 3, 4], b: [3, 1] }, build: (g, { a, b }) => ops(g).add(a!, b!) }],
  Sub: [{ inputs: { a: [4], b: [2, 3, 4] }, build: (g, { a, b }) => ops(g).sub(a!, b!) }],
  Mul: [{ inputs: { a: [2, 3], b: [2, 1] }, build: (g, { a, b }) => ops(g).mul(a!, b!) }],
  Div: [
    {
      inputs: { a: [2, 3], b: [3] },
      build: (g, { a, b }) => ops(g).div(a!, b!),
      sample: (n, r) => (n === 'b' ? positive(n, r) : r() * 2 - 1),
    },
  ],
  Neg: [unary((o, x) => o.neg(x))],
  Pow: [{ inputs: { a: [2, 3], b: [2, 3] }, build: (g, { a, b }) => ops(g).pow(a!, b!), sample: positive }],
  Sqrt: [unary((o, x) => o.sqrt(x), { sample: positive })],
  Reciprocal: [unary((o, x) => o.reciprocal(x), { sample: positive })],
  Exp: [unary((o, x) => o.exp(x))],
  Log: [unary((o, x) => o.log(x), { sample: positive })],
  Abs: [unary((o, x) => o.abs(x), { sample: awayFromZero })],
  Tanh: [unary((o, x) => o.tanh(x))],
  Sigmoid: [unary((o, x) => o.sigmoid(x))],
  Relu: [unary((o, x) => o.relu(x), { sample: awayFromZero })],
  LeakyRelu: [unary((o, x) => o.leakyRelu(x, 0.2), { sample: awayFromZero })],
  Erf: [unary((o, x) => o.gelu(x), { dtype: 'float32' })],
  Softmax: [unary((o, x) => o.softmax(x, 1)), unary((o, x) => o.softmax(x, 0))],
  LogSoftmax: [unary((o, x) => o.logSoftmax(x, -1))],
  Cast: [unary((o, x) => o.cast(o.cast(x, 'float64'), 'float32'), { dtype: 'float32' })],
  Clip: [
    unary((o, x) => o.clip(x, o.scalar('float64', -0.5), o.scalar('float64', 0.5)), {
      sample: (_, r) => [-0.9, -0.3, 0.2, 0.8][Math.floor(r() * 4)]! + r() * 0.05,
    }),
  ],
  Where: [
    {
      inputs: { a: [2, 3], b: [3] },
      build: (g, { a, b }) => ops(g).where(ops(g).const('bool', [2, 3], [1, 0, 1, 0, 0, 1]), a!, b!),
    },
  ],
  Max: [{ inputs: { a: [2, 3], b: [3] }, build: (g, { a, b }) => ops(g).max(a!, b!) }],
  Min: [{ inputs: { a: [2, 3], b: [2, 3] }, build: (g, { a, b }) => ops(g).min(a!, b!) }],
  Sum: [{ inputs: { a: [2, 3], b: [3], c: [2, 1] }, build: (g, { a, b, c }) => ops(g).sum(a!, b!, c!) }],
  MatMul: [
    { inputs: { a: [3, 4], b: [4, 2] }, build: (g, { a, b }) => ops(g).matmul(a!, b!) },
    { inputs: { a: [2, 3, 4], b: [4, 5] }, build: (g, { a, b }) => ops(g).matmul(a!, b!) },
    { inputs: { a: [2, 1, 3, 4], b: [3, 4, 2] }, build: (g, { a, b }) => ops(g).matmul(a!, b!) },
    { inputs: { a: [4], b: [2, 4, 3] }, build: (g, { a, b }) => ops(g).matmul(a!, b!) },
    { inputs: { a: [2, 3, 4], b: [4] }, build: (g, { a, b }) => ops(g).matmul(a!, b!) },
  ],
  Gemm: [
    {
      inputs: { a: [3, 4], b: [4, 2], c: [2] },
      build: (g, { a, b, c }) => ops(g).gemm(a!, b!, c!, { alpha: 0.5, beta: 2 }),
    },
    {
      inputs: { a: [4, 3], b: [2, 4], c: [3, 2] },
      build: (g, { a, b, c }) => ops(g).gemm(a!, b!, c!, { transA: true, transB: true }),
    },
    { inputs: { a: [4, 3], b: [4, 2] }, build: (g, { a, b }) => ops(g).gemm(a!, b!, undefined, { transA: true }) },
  ],
  ReduceSum: [unary((o, x) => o.reduceSum(x, [1], false)), unary((o, x) => o.reduceSum(x, [0], true))],
  ReduceMean: [unary((o, x) => o.reduceMean(x, [0, 1], false)), unary((o, x) => o.reduceMean(x, [-1], true))],
  ReduceSumSquare: [unary((o, x) => o.reduceSumSquare(x, [1], false))],
  ReduceL2: [unary((o, x) => o.g.op('ReduceL2', [x], { axes: attr.ints([1]), keepdims: attr.int(0) }))],
  ReduceMax: [unary((o, x) => o.reduceMax(x, [1], false))],
  Reshape: [unary((o, x) => o.reshape(x, [2, 6]))],
  Flatten: [{ inputs: { x: [2, 3, 2] }, build: (g, { x }) => ops(g).flatten(x!, 1) }],
  Squeeze: [{ inputs: { x: [3, 1, 4] }, build: (g, { x }) => ops(g).squeeze(x!, [1]) }],
  Unsqueeze: [unary((o, x) => o.unsqueeze(x, [0, 2]))],
  Transpose: [{ inputs: { x: [2, 3, 4] }, build: (g, { x }) => ops(g).transpose(x!, [2, 0, 1]) }],
  Expand: [{ inputs: { x: [3, 1] }, build: (g, { x }) => ops(g).expand(x!, [2, 3, 4]) }],
  Concat: [{ inputs: { a: [2, 3], b: [2, 1] }, build: (g, { a, b }) => ops(g).concat([a!, b!, a!], 1) }],
  Split: [
    {
      inputs: { x: [3, 5] },
      build: (g, { x }) => {
        const o = ops(g);
        const [p, q] = o.split(x!, [2, 3], 1);
        return o.concat([o.mul(p!, p!), q!], 1);
      },
    },
  ],
  Slice: [{ inputs: { x: [4, 5] }, build: (g, { x }) => ops(g).slice(x!, [1, -3], [3, 100], [0, 1]) }],
  Pad: [{ inputs: { x: [2, 3] }, build: (g, { x }) => ops(g).pad(x!, [1, 0, 0, 2]) }],
  Gather: [
    {
      inputs: { x: [5, 3] },
      build: (g, { x }) => ops(g).gather(x!, ops(g).const('int64', [2, 3], [0, 4, 0, 2, 2, 1]), 0),
    },
    { inputs: { x: [2, 5, 3] }, build: (g, { x }) => ops(g).gather(x!, ops(g).const('int64', [4], [1, 1, 3, 0]), 1) },
  ],
  Conv: [
    conv({ x: [2, 3, 7, 6], w: [4, 3, 3, 3], b: [4] }, { strides: [2, 2], pads: [1, 1, 1, 1] }),
    conv({ x: [1, 2, 8, 8], w: [3, 2, 3, 2] }, { dilations: [2, 1], pads: [2, 0, 1, 1] }),
    conv({ x: [2, 4, 5, 5], w: [6, 2, 3, 3] }, { group: 2, pads: [1, 1, 1, 1] }),
    conv({ x: [1, 3, 6, 6], w: [3, 1, 3, 3] }, { group: 3, strides: [2, 2] }),
    conv({ x: [2, 3, 4, 4], w: [5, 3, 1, 1], b: [5] }, {}),
    // Weights larger than the activations: the stride-1 input gradient flips dy instead.
    conv({ x: [1, 4, 5, 4], w: [6, 4, 3, 3] }, { pads: [2, 0, 1, 1], dilations: [1, 2] }),
    conv({ x: [1, 8, 3, 3], w: [8, 2, 3, 3] }, { pads: [1, 1, 1, 1], group: 4 }),
    // Few input channels on a large enough image: the weight gradient from phase-flattened columns.
    conv({ x: [1, 2, 48, 48], w: [2, 2, 7, 7] }, { strides: [2, 2], pads: [3, 3, 3, 3] }),
    conv({ x: [1, 2, 16, 16], w: [3, 2, 3, 3] }, { pads: [1, 1, 1, 1] }),
    conv({ x: [1, 4, 24, 24], w: [6, 2, 3, 3] }, { group: 2, dilations: [2, 1], pads: [2, 1, 2, 1] }),
    conv({ x: [2, 3, 20, 17], w: [4, 3, 3, 2] }, { strides: [2, 1], pads: [1, 0, 2, 1] }),
  ],
  ConvTranspose: [
    {
      inputs: { x: [2, 3, 3, 4], w: [3, 2, 3, 3], b: [2] },
      build: (g, { x, w, b }) =>
        ops(g).convTranspose(x!, w!, b!, { strides: [2, 2], pads: [1, 1, 1, 1], outputPadding: [1, 0] }),
      dtype: 'float32',
    },
    {
      inputs: { x: [1, 4, 3, 3], w: [4, 1, 2, 2] },
      build: (g, { x, w }) => ops(g).convTranspose(x!, w!, undefined, { strides: [2, 2], group: 2 }),
      dtype: 'float32',
    },
  ],
  MaxPool: [
    {
      inputs: { x: [2, 2, 5, 5] },
      build: (g, { x }) => ops(g).maxPool(x!, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
      dtype: 'float32',
      sample: distinct(),
    },
    {
      inputs: { x: [1, 3, 4, 4] },
      build: (g, { x }) => ops(g).maxPool(x!, { kernel: [2, 2], strides: [2, 2] }),
      dtype: 'float32',
      sample: distinct(),
    },
  ],
  AveragePool: [
    {
      inputs: { x: [2, 2, 5, 5] },
      build: (g, { x }) => ops(g).averagePool(x!, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }),
      dtype: 'float32',
    },
    {
      inputs: { x: [1, 2, 5, 4] },
      build: (g, { x }) =>
        ops(g).averagePool(x!, { kernel: [3, 2], strides: [1, 2], pads: [1, 0, 1, 0], countIncludePad: true }),
      dtype: 'float32',
    },
    {
      inputs: { x: [1, 2, 4, 4] },
      build: (g, { x }) => ops(g).averagePool(x!, { kernel: [2, 2], strides: [2, 2] }),
      dtype: 'float32',
    },
  ],
  LayerNormalization: [
    {
      inputs: { x: [2, 3, 5], s: [5], b: [5] },
      build: (g, { x, s, b }) => ops(g).layerNormalization(x!, s!, b!, -1)[0],
      dtype: 'float32',
    },
    {
      inputs: { x: [2, 3, 4], s: [3, 4] },
      build: (g, { x, s }) => ops(g).layerNormalization(x!, s!, undefined, 1)[0],
      dtype: 'float32',
    },
  ],
  BatchNormalization: [
    {
      inputs: { x: [4, 3, 2, 2], s: [3], b: [3] },
      build: (g, { x, s, b }) => batchNorm(g, x!, s!, b!, true),
      dtype: 'float32',
    },
    {
      inputs: { x: [2, 3, 2, 2], s: [3], b: [3] },
      build: (g, { x, s, b }) => batchNorm(g, x!, s!, b!, false),
      dtype: 'float32',
    },
    // Training through batch statistics fed to an inference-mode node (ops.batchNormalizationTraining).
    {
      inputs: { x: [4, 3, 2, 3], s: [3], b: [3] },
      build: (g, { x, s, b }) =>
        ops(g).batchNormalizationTraining(
          x!,
          s!,
          b!,
          ops(g).const('float32', [3], [0, 0, 0]),
          ops(g).const('float32', [3], [1, 1, 1]),
        )[0],
      dtype: 'float32',
    },
  ],
  Resize: [
    { inputs: { x: [1, 2, 3, 2] }, build: (g, { x }) => ops(g).resize(x!, [1, 1, 2, 3], 'nearest'), dtype: 'float32' },
    { inputs: { x: [2, 1, 3, 4] }, build: (g, { x }) => ops(g).resize(x!, [1, 1, 2, 2], 'linear'), dtype: 'float32' },
  ],
  GlobalAveragePool: [
    { inputs: { x: [2, 3, 4, 5] }, build: (g, { x }) => ops(g).globalAveragePool(x!), dtype: 'float32' },
  ],
};

function conv(shapes: Record<string, number[]>, options: Parameters<ReturnType<typeof ops>['conv']>[3]): GradCase {
  return { inputs: shapes, build: (g, { x, w, b }) => ops(g).conv(x!, w!, b, options), dtype: 'float32' };
}

function batchNorm(g: GraphBuilder, x: Value, scale: Value, bias: Value, training: boolean): Value {
  const o = ops(g);
  const mean = o.const('float32', [3], [0.1, -0.2, 0.3]);
  const variance = o.const('float32', [3], [1.5, 0.5, 2]);
  return g.node(
    'BatchNormalization',
    [x, scale, bias, mean, variance],
    { epsilon: attr.float(1e-5), momentum: attr.float(0.9), training_mode: attr.int(training ? 1 : 0) },
    { outputs: training ? 3 : 1 },
  )[0]!;
}

describe('gradient rules against central finite differences', () => {
  for (const [op, cases] of Object.entries(CASES)) {
    cases.forEach((spec, i) => {
      it(`${op}${cases.length > 1 ? ` (case ${i + 1})` : ''}`, async () => {
        const result = await gradCheck(spec);
        const tolerance = (spec.dtype ?? 'float64') === 'float64' ? 1e-6 : 2e-3;
        expect(result.maxRelError).toBeLessThan(tolerance);
      });
    });
  }

  it('covers every op in the gradient table', () => {
    expect(Object.keys(GRADIENTS).filter((op) => !CASES[op] && op !== 'Dropout')).toEqual([]);
  });
});

export type { GraphBuilder };
void tensor;
