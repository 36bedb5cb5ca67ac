import type { Value } from '@medsyn/onnx-graph';
import type { GradContext } from './grad-context';
import {
  averagePoolGradient,
  batchNormGradient,
  convGradient,
  convTransposeGradient,
  dropoutGradient,
  layerNormGradient,
  maxPoolGradient,
  resizeGradient,
} from './nn-gradients';

/** A gradient rule: from the gradients of a node's outputs to those of its inputs (undefined: none). */
export type GradientRule = (c: GradContext) => (Value | undefined)[];

/**
 * Every differentiable operator's gradient, one entry per op, in standard ONNX ops (opset 17).
 * Search this file for an op's name to see how its gradient is computed; adding an op is adding
 * an entry here and a finite-difference case in test/gradients.test.ts.
 */
export const GRADIENTS: Record<string, GradientRule> = {
  Identity: (c) => [c.dy[0]],
  Add: (c) => [c.unbroadcast(c.dyOrZeros(), c.x(0)), c.unbroadcast(c.dyOrZeros(), c.x(1))],
  Sub: (c) => [
    c.unbroadcast(c.dyOrZeros(), c.x(0)),
    c.needs(1) ? c.unbroadcast(c.o.neg(c.dyOrZeros()), c.x(1)) : undefined,
  ],
  Mul: (c) => [
    c.needs(0) ? c.unbroadcast(c.o.mul(c.dyOrZeros(), c.x(1)), c.x(0)) : undefined,
    c.needs(1) ? c.unbroadcast(c.o.mul(c.dyOrZeros(), c.x(0)), c.x(1)) : undefined,
  ],
  // y = a / b: da = dy / b, db = -dy * y / b.
  Div: (c) => [
    c.needs(0) ? c.unbroadcast(c.o.div(c.dyOrZeros(), c.x(1)), c.x(0)) : undefined,
    c.needs(1) ? c.unbroadcast(c.o.neg(c.o.div(c.o.mul(c.dyOrZeros(), c.y()), c.x(1))), c.x(1)) : undefined,
  ],
  Neg: (c) => [c.o.neg(c.dyOrZeros())],
  // y = a^b: da = dy * b * a^(b-1), db = dy * y * ln(a).
  Pow: (c) => [
    c.needs(0)
      ? c.unbroadcast(
          c.o.mul(c.dyOrZeros(), c.o.mul(c.x(1), c.o.pow(c.x(0), c.o.sub(c.x(1), c.scalar(1, c.x(1)))))),
          c.x(0),
        )
      : undefined,
    c.needs(1) ? c.unbroadcast(c.o.mul(c.dyOrZeros(), c.o.mul(c.y(), c.o.log(c.x(0)))), c.x(1)) : undefined,
  ],
  Sqrt: (c) => [c.o.div(c.o.mul(c.dyOrZeros(), c.scalar(0.5, c.y())), c.y())],
  Reciprocal: (c) => [c.o.neg(c.o.mul(c.dyOrZeros(), c.o.mul(c.y(), c.y())))],
  Exp: (c) => [c.o.mul(c.dyOrZeros(), c.y())],
  Log: (c) => [c.o.div(c.dyOrZeros(), c.x(0))],
  Abs: (c) => [c.o.mul(c.dyOrZeros(), c.o.sign(c.x(0)))],
  Tanh: (c) => [c.o.mul(c.dyOrZeros(), c.o.sub(c.scalar(1, c.y()), c.o.mul(c.y(), c.y())))],
  Sigmoid: (c) => [c.o.mul(c.dyOrZeros(), c.o.mul(c.y(), c.o.sub(c.scalar(1, c.y()), c.y())))],
  // The mask from the output (y > 0 exactly where x > 0): the input need not outlive the forward
  // pass, and onnxruntime may compute the Relu in place.
  Relu: (c) => [c.o.where(c.o.greater(c.y(), c.scalar(0, c.y())), c.dyOrZeros(), c.scalar(0, c.y()))],
  LeakyRelu: (c) => {
    const dy = c.dyOrZeros();
    return [c.o.where(c.o.greater(c.x(0), c.scalar(0, c.x(0))), dy, c.o.mul(dy, c.scalar(c.float('alpha', 0.01), dy)))];
  },
  // d erf(x)/dx = 2/sqrt(pi) * exp(-x^2).
  Erf: (c) => [
    c.o.mul(
      c.dyOrZeros(),
      c.o.mul(c.scalar(2 / Math.sqrt(Math.PI), c.x(0)), c.o.exp(c.o.neg(c.o.mul(c.x(0), c.x(0))))),
    ),
  ],
  // Softmax: dx = y * (dy - sum(dy * y)) over the axis.
  Softmax: (c) => {
    const axis = c.int('axis', -1);
    const dy = c.dyOrZeros();
    return [c.o.mul(c.y(), c.o.sub(dy, c.o.reduceSum(c.o.mul(dy, c.y()), [axis], true)))];
  },
  // LogSoftmax: dx = dy - softmax(x) * sum(dy) over the axis.
  LogSoftmax: (c) => {
    const axis = c.int('axis', -1);
    const dy = c.dyOrZeros();
    return [c.o.sub(dy, c.o.mul(c.o.exp(c.y()), c.o.reduceSum(dy, [axis], true)))];
  },
  Cast: (c) => [c.o.cast(c.dyOrZeros(), c.x(0).dtype)],
  // Clip passes the gradient where the input was inside [min, max] (there y == x).
  Clip: (c) => [c.o.where(c.o.equal(c.y(), c.x(0)), c.dyOrZeros(), c.scalar(0, c.x(0)))],
  Where: (c) => {
    const zero = c.scalar(0, c.y());
    return [
      undefined,
      c.needs(1) ? c.unbroadcast(c.o.where(c.x(0), c.dyOrZeros(), zero), c.x(1)) : undefined,
      c.needs(2) ? c.unbroadcast(c.o.where(c.x(0), zero, c.dyOrZeros()), c.x(2)) : undefined,
    ];
  },
  Max: (c) => extremumGradient(c),
  Min: (c) => extremumGradient(c),
  Sum: (c) => c.inputs.map((v) => (v ? c.unbroadcast(c.dyOrZeros(), v) : undefined)),
  MatMul: (c) => matmulGradient(c),
  // Y = alpha op(A) op(B) + beta C, with the transposes folded into Gemm's flags.
  Gemm: (c) => {
    const [a, b] = [c.x(0), c.x(1)];
    const dy = c.dyOrZeros();
    const alpha = c.float('alpha', 1);
    const beta = c.float('beta', 1);
    const transA = c.int('transA', 0) === 1;
    const transB = c.int('transB', 0) === 1;
    const da = !c.needs(0)
      ? undefined
      : transA
        ? c.o.gemm(b, dy, undefined, { alpha, transA: transB, transB: true })
        : c.o.gemm(dy, b, undefined, { alpha, transB: !transB });
    const db = !c.needs(1)
      ? undefined
      : transB
        ? c.o.gemm(dy, a, undefined, { alpha, transA: true, transB: transA })
        : c.o.gemm(a, dy, undefined, { alpha, transA: !transA });
    const dc =
      c.inputs[2] && c.needs(2) ? c.unbroadcast(beta === 1 ? dy : c.o.mul(dy, c.scalar(beta, dy)), c.x(2)) : undefined;
    return [da, db, dc];
  },
  ReduceSum: (c) => {
    const axes = c.inputs[1] ? (c.constantInts(1) ?? c.fail('axes must be a constant')) : undefined;
    return [c.expandTo(keptDims(c, axes), c.x(0))];
  },
  ReduceMean: (c) => {
    const x = c.x(0);
    const grad = c.expandTo(keptDims(c, c.ints('axes')), x);
    return [c.o.div(grad, elementsPerOutput(c, x, c.y()))];
  },
  ReduceSumSquare: (c) => [
    c.o.mul(c.expandTo(keptDims(c, c.ints('axes')), c.x(0)), c.o.mul(c.x(0), c.scalar(2, c.x(0)))),
  ],
  ReduceL2: (c) => [
    c.o.div(
      c.o.mul(c.expandTo(keptDims(c, c.ints('axes')), c.x(0)), c.x(0)),
      c.expandTo(keptDims(c, c.ints('axes'), c.y()), c.x(0)),
    ),
  ],
  // ReduceMax: the gradient goes to the maximal elements, shared equally among ties.
  ReduceMax: (c) => {
    const x = c.x(0);
    const axes = c.ints('axes') ?? x.shape.map((_, i) => i);
    const max = c.expandTo(keptDims(c, axes, c.y()), x);
    const mask = c.o.cast(c.o.equal(x, max), x.dtype);
    const ties = c.o.reduceSum(mask, axes, true);
    return [c.o.mul(c.o.div(mask, ties), c.expandTo(keptDims(c, axes), x))];
  },
  Reshape: (c) => [c.reshapeTo(c.dyOrZeros(), c.x(0))],
  Flatten: (c) => [c.reshapeTo(c.dyOrZeros(), c.x(0))],
  Squeeze: (c) => [c.reshapeTo(c.dyOrZeros(), c.x(0))],
  Unsqueeze: (c) => [c.reshapeTo(c.dyOrZeros(), c.x(0))],
  Transpose: (c) => {
    const perm = c.ints('perm') ?? c.x(0).shape.map((_, i, s) => s.length - 1 - i);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [c.o.transpose(c.dyOrZeros(), inverse)];
  },
  Expand: (c) => [c.unbroadcast(c.dyOrZeros(), c.x(0))],
  Concat: (c) => {
    const rank = c.y().shape.length;
    const axis = (c.int('axis', 0) + rank) % rank;
    const sizes = c.inputs.map((v) => v!.shape[axis]!);
    if (!sizes.every((s): s is number => typeof s === 'number')) c.fail('concatenated sizes must be static');
    return c.o.split(c.dyOrZeros(), sizes as number[], axis);
  },
  Split: (c) => [
    c.o.concat(
      c.outputs.map((_, i) => c.dyOrZeros(i)),
      c.int('axis', 0),
    ),
  ],
  // Slice with unit steps: the gradient is the output gradient padded back to the input's size.
  Slice: (c) => {
    const x = c.x(0);
    const rank = x.shape.length;
    const starts = c.constantInts(1)!;
    const axes = (c.inputs[3] ? c.constantInts(3)! : starts.map((_, i) => i)).map((a) => (a + rank) % rank);
    const steps = c.inputs[4] ? c.constantInts(4)! : starts.map(() => 1);
    if (steps.some((s) => s !== 1)) c.fail('only unit steps are supported');
    const begin = new Array(rank).fill(0);
    const end = new Array(rank).fill(0);
    axes.forEach((axis, j) => {
      const size = x.shape[axis]!;
      const out = c.y().shape[axis]!;
      if (typeof size !== 'number' || typeof out !== 'number') c.fail(`sliced axis ${axis} needs a static size`);
      begin[axis] = Math.min(Math.max(starts[j]! < 0 ? starts[j]! + (size as number) : starts[j]!, 0), size as number);
      end[axis] = (size as number) - begin[axis] - (out as number);
    });
    return [c.o.pad(c.dyOrZeros(), [...begin, ...end])];
  },
  // Pad (constant): the gradient is the output gradient with the padding sliced off.
  Pad: (c) => {
    if (c.string('mode', 'constant') !== 'constant') c.fail('only constant padding is differentiable here');
    const x = c.x(0);
    const pads = c.constantInts(1) ?? c.fail('pads must be a constant');
    if (c.inputs[3]) c.fail('Pad with an axes input is not supported');
    const rank = x.shape.length;
    const axes = x.shape.map((_, i) => i);
    const ends = x.shape.map((d, i) =>
      typeof d === 'number' ? pads[i]! + d : c.fail('padded input needs a static shape'),
    );
    return [c.o.slice(c.dyOrZeros(), pads.slice(0, rank), ends, axes)];
  },
  // Gather (embedding lookup): scatter-add the output gradient back into the rows it read.
  Gather: (c) => {
    const [data, indices] = [c.x(0), c.x(1)];
    const axis = (c.int('axis', 0) + data.shape.length) % data.shape.length;
    const dy = c.dyOrZeros();
    if (axis !== 0) {
      // Move the gathered axis first, scatter, and move it back.
      const perm = [axis, ...data.shape.map((_, i) => i).filter((i) => i !== axis)];
      const dataT = c.o.transpose(data, perm);
      const ir = indices.shape.length;
      const dyPerm = [
        ...Array.from({ length: ir }, (_, i) => axis + i),
        ...Array.from({ length: axis }, (_, i) => i),
        ...Array.from({ length: data.shape.length - axis - 1 }, (_, i) => axis + ir + i),
      ];
      const scattered = c.o.scatterND(
        c.o.zerosLike(dataT),
        c.o.unsqueeze(indices, [-1]),
        c.o.transpose(dy, dyPerm),
        'add',
      );
      return [
        c.o.transpose(
          scattered,
          perm.map((_, i) => perm.indexOf(i)),
        ),
      ];
    }
    return [c.o.scatterND(c.o.zerosLike(data), c.o.unsqueeze(c.o.cast(indices, 'int64'), [-1]), dy, 'add'), undefined];
  },
  Conv: convGradient,
  ConvTranspose: convTransposeGradient,
  MaxPool: maxPoolGradient,
  AveragePool: averagePoolGradient,
  LayerNormalization: layerNormGradient,
  BatchNormalization: batchNormGradient,
  Dropout: dropoutGradient,
  Resize: resizeGradient,
  GlobalAveragePool: (c) => {
    const x = c.x(0);
    const spatial = x.shape.slice(2);
    if (!spatial.every((d): d is number => typeof d === 'number')) c.fail('spatial sizes must be static');
    const count = (spatial as number[]).reduce((a, b) => a * b, 1);
    return [c.o.div(c.expandTo(c.dyOrZeros(), x), c.scalar(count, x))];
  },
};

/** dy with the reduced axes restored as size-1 dims (for reductions that dropped them). */
function keptDims(c: GradContext, axes: number[] | undefined, v: Value = c.dyOrZeros()): Value {
  if (c.int('keepdims', 1) === 1) return v;
  const rank = c.x(0).shape.length;
  const all = axes && axes.length ? axes.map((a) => (a + rank) % rank) : c.x(0).shape.map((_, i) => i);
  return c.o.unsqueeze(
    v,
    [...all].sort((a, b) => a - b),
  );
}

/** How many input elements feed each output element of a reduction, as a scalar of x's type. */
function elementsPerOutput(c: GradContext, x: Value, y: Value): Value {
  const count = (s: readonly (number | string)[]) =>
    s.every((d) => typeof d === 'number') ? (s as number[]).reduce((a, b) => a * b, 1) : undefined;
  const [nx, ny] = [count(x.shape), count(y.shape)];
  if (nx !== undefined && ny !== undefined) return c.scalar(nx / ny, x);
  const size = (v: Value) => c.o.cast(c.g.op('Size', [v]), x.dtype);
  return c.o.div(size(x), size(y));
}

/** Binary Max/Min: the gradient goes to the input that won (shared at ties). */
function extremumGradient(c: GradContext): (Value | undefined)[] {
  const y = c.y();
  const masks = c.inputs.map((v) => c.o.cast(c.o.equal(v!, y), y.dtype));
  const ties = c.o.sum(...masks.map((m) => c.expandTo(m, y)));
  return c.inputs.map((v, i) =>
    c.needs(i) ? c.unbroadcast(c.o.div(c.o.mul(c.dyOrZeros(), masks[i]!), ties), v!) : undefined,
  );
}

/** MatMul with numpy semantics: batched, broadcast, and vectors as rank-1 inputs. */
function matmulGradient(c: GradContext): (Value | undefined)[] {
  let [a, b] = [c.x(0), c.x(1)];
  let dy = c.dyOrZeros();
  const vectorA = a.shape.length === 1;
  const vectorB = b.shape.length === 1;
  if (vectorA) {
    a = c.o.unsqueeze(a, [0]);
    dy = c.o.unsqueeze(dy, [-2]);
  }
  if (vectorB) {
    b = c.o.unsqueeze(b, [1]);
    dy = c.o.unsqueeze(dy, [-1]);
  }
  const swap = (v: Value) =>
    c.o.transpose(v, [...v.shape.map((_, i) => i).slice(0, -2), v.shape.length - 1, v.shape.length - 2]);
  let da = c.needs(0) ? c.unbroadcast(c.o.matmul(dy, swap(b)), a) : undefined;
  let db = c.needs(1) ? c.unbroadcast(c.o.matmul(swap(a), dy), b) : undefined;
  if (da && vectorA) da = c.o.squeeze(da, [0]);
  if (db && vectorB) db = c.o.squeeze(db, [1]);
  return [da, db];
}
