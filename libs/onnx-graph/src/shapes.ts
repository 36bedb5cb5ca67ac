import { dtypeOfOnnx, type DType } from './dtype';
import type { Tensor } from './tensor';
import type { Attrs, Dim, Shape, Value } from './value';

/** What a shape rule sees of a node about to be added. */
export interface ShapeContext {
  readonly op: string;
  readonly inputs: readonly (Value | undefined)[];
  readonly attrs: Attrs;
  /** The value of input i when it is a constant known at build time. */
  constant(i: number): Tensor | undefined;
  /** A fresh symbol for a size known only at run time. */
  unknown(): Dim;
  /** How many outputs the node was asked for. */
  readonly outputCount: number;
}

export interface TypeAndShape {
  dtype: DType;
  shape: Shape;
}

type Rule = (ctx: ShapeContext) => TypeAndShape[];

/** Thrown when a node's inputs do not fit its operator; names the op and the problem. */
export class ShapeError extends Error {}

const fail = (ctx: ShapeContext, message: string): never => {
  throw new ShapeError(`${ctx.op}: ${message}`);
};

function input(ctx: ShapeContext, i: number): Value {
  return ctx.inputs[i] ?? fail(ctx, `input ${i} is required`);
}

const intAttr = (ctx: ShapeContext, name: string, fallback: number): number => {
  const a = ctx.attrs[name];
  return a && a.type === 'int' ? a.value : fallback;
};
const intsAttr = (ctx: ShapeContext, name: string): number[] | undefined => {
  const a = ctx.attrs[name];
  return a && a.type === 'ints' ? a.value : undefined;
};
const constantInts = (ctx: ShapeContext, i: number): number[] | undefined => {
  const t = ctx.constant(i);
  return t ? Array.from(t.data as ArrayLike<number | bigint>, Number) : undefined;
};

const normalizeAxis = (ctx: ShapeContext, axis: number, rank: number): number => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(ctx, `axis ${axis} is out of range for rank ${rank}`);
  return a;
};

/** Numpy broadcasting of two shapes; equal symbols are assumed equal sizes. */
export function broadcastShapes(a: Shape, b: Shape, op = 'broadcast'): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1 || x === y) out.push(x);
    else if (typeof x === 'number' && typeof y === 'number')
      throw new ShapeError(`${op}: shapes [${a}] and [${b}] do not broadcast`);
    else out.push(typeof x === 'number' ? x : y);
  }
  return out;
}

const same: Rule = (ctx) => [{ dtype: input(ctx, 0).dtype, shape: input(ctx, 0).shape }];

const broadcast =
  (resultType?: DType): Rule =>
  (ctx) => {
    const present = ctx.inputs.filter((v): v is Value => v !== undefined);
    const shape = present.map((v) => v.shape).reduce((a, b) => broadcastShapes(a, b, ctx.op));
    return [{ dtype: resultType ?? present[0]!.dtype, shape }];
  };

function reduce(ctx: ShapeContext, axes: number[] | undefined): TypeAndShape[] {
  const x = input(ctx, 0);
  const keep = intAttr(ctx, 'keepdims', 1) === 1;
  const noopWhenEmpty = intAttr(ctx, 'noop_with_empty_axes', 0) === 1;
  if (!axes || axes.length === 0) {
    if (noopWhenEmpty) return [{ dtype: x.dtype, shape: x.shape }];
    axes = x.shape.map((_, i) => i);
  }
  const set = new Set(axes.map((a) => normalizeAxis(ctx, a, x.shape.length)));
  const shape = x.shape.flatMap((d, i) => (set.has(i) ? (keep ? [1] : []) : [d]));
  return [{ dtype: x.dtype, shape }];
}

function matmulShape(ctx: ShapeContext, a: Shape, b: Shape): Dim[] {
  if (a.length === 0 || b.length === 0) fail(ctx, 'MatMul inputs must have rank >= 1');
  const a2 = a.length === 1 ? [1, a[0]!] : a;
  const b2 = b.length === 1 ? [b[0]!, 1] : b;
  const k1 = a2[a2.length - 1]!;
  const k2 = b2[b2.length - 2]!;
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2)
    fail(ctx, `inner dimensions differ: [${a}] x [${b}]`);
  const batch = broadcastShapes(a2.slice(0, -2), b2.slice(0, -2), ctx.op);
  const out = [...batch, a2[a2.length - 2]!, b2[b2.length - 1]!];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.splice(out.length - 1, 1);
  return out;
}

/** Output size of a sliding window (Conv, pools) along one axis. */
function windowOut(
  ctx: ShapeContext,
  size: Dim,
  kernel: number,
  stride: number,
  padBegin: number,
  padEnd: number,
  dilation: number,
  ceil = false,
): Dim {
  if (typeof size !== 'number') return ctx.unknown();
  const span = dilation * (kernel - 1) + 1;
  const n = (size + padBegin + padEnd - span) / stride;
  const out = (ceil ? Math.ceil(n) : Math.floor(n)) + 1;
  if (out <= 0) fail(ctx, `window of ${span} does not fit input size ${size} with pads ${padBegin},${padEnd}`);
  return out;
}

function spatialPads(ctx: ShapeContext, spatial: number): number[] {
  const autoPad = ctx.attrs.auto_pad;
  if (autoPad && autoPad.type === 'string' && autoPad.value !== 'NOTSET' && autoPad.value !== 'VALID') {
    fail(ctx, `auto_pad ${autoPad.value} is not supported; give explicit pads`);
  }
  return intsAttr(ctx, 'pads') ?? new Array(2 * spatial).fill(0);
}

function windowed(ctx: ShapeContext, x: Value, kernel: number[], channels: Dim): Dim[] {
  const spatial = kernel.length;
  if (x.shape.length !== spatial + 2) fail(ctx, `expects rank ${spatial + 2} input, got [${x.shape}]`);
  const strides = intsAttr(ctx, 'strides') ?? new Array(spatial).fill(1);
  const dilations = intsAttr(ctx, 'dilations') ?? new Array(spatial).fill(1);
  const pads = spatialPads(ctx, spatial);
  const ceil = intAttr(ctx, 'ceil_mode', 0) === 1;
  const out = kernel.map((k, i) =>
    windowOut(ctx, x.shape[i + 2]!, k, strides[i]!, pads[i]!, pads[i + spatial]!, dilations[i]!, ceil),
  );
  return [x.shape[0]!, channels, ...out];
}

const RULES: Record<string, Rule> = {};
const define = (ops: string[], rule: Rule) => ops.forEach((op) => (RULES[op] = rule));

define([
  'Identity',
  'Neg',
  'Exp',
  'Log',
  'Abs',
  'Tanh',
  'Sigmoid',
  'Relu',
  'LeakyRelu',
  'Elu',
  'Erf',
  'Sqrt',
  'Reciprocal',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Sin',
  'Cos',
  'Softplus',
  'Softmax',
  'LogSoftmax',
  'Clip',
  'CumSum',
  'Trilu',
  'HardSigmoid',
], same);
define(['Not'], (ctx) => [{ dtype: 'bool', shape: input(ctx, 0).shape }]);
define(['IsNaN', 'IsInf'], (ctx) => [{ dtype: 'bool', shape: input(ctx, 0).shape }]);
define(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Mod'], broadcast());
define(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor'], broadcast('bool'));
define(['Where'], (ctx) => [{ dtype: input(ctx, 1).dtype, shape: broadcast()(ctx)[0]!.shape }]);
define(['Cast'], (ctx) => {
  const to = ctx.attrs.to;
  if (!to || to.type !== 'int') fail(ctx, 'Cast needs the integer "to" attribute (an ONNX element type)');
  return [{ dtype: dtypeOfOnnx((to as { value: number }).value), shape: input(ctx, 0).shape }];
});
define(['MatMul'], (ctx) => [
  { dtype: input(ctx, 0).dtype, shape: matmulShape(ctx, input(ctx, 0).shape, input(ctx, 1).shape) },
]);
define(['Gemm'], (ctx) => {
  const [a, b] = [input(ctx, 0), input(ctx, 1)];
  if (a.shape.length !== 2 || b.shape.length !== 2) fail(ctx, 'Gemm inputs must be matrices');
  const m = intAttr(ctx, 'transA', 0) ? a.shape[1]! : a.shape[0]!;
  const n = intAttr(ctx, 'transB', 0) ? b.shape[0]! : b.shape[1]!;
  return [{ dtype: a.dtype, shape: [m, n] }];
});
define(['ReduceSum'], (ctx) =>
  reduce(ctx, ctx.inputs[1] ? (constantInts(ctx, 1) ?? fail(ctx, 'axes must be a constant')) : undefined));
define(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL2', 'ReduceLogSumExp', 'ReduceSumSquare'], (
  ctx,
) => reduce(ctx, intsAttr(ctx, 'axes')));
define(['ArgMax', 'ArgMin'], (ctx) => {
  const x = input(ctx, 0);
  const axis = normalizeAxis(ctx, intAttr(ctx, 'axis', 0), x.shape.length);
  const keep = intAttr(ctx, 'keepdims', 1) === 1;
  return [{ dtype: 'int64', shape: x.shape.flatMap((d, i) => (i === axis ? (keep ? [1] : []) : [d])) }];
});
define(['Reshape'], (ctx) => {
  const x = input(ctx, 0);
  const target =
    constantInts(ctx, 1) ??
    fail(ctx, 'the target shape must be a constant (or give the node an explicit output shape)');
  const shape: Dim[] = target.map((d, i) => (d === 0 && intAttr(ctx, 'allowzero', 0) === 0 ? x.shape[i]! : d));
  const minus = shape.indexOf(-1);
  if (minus >= 0) {
    const known = shape.filter((_, i) => i !== minus);
    if (x.shape.every((d) => typeof d === 'number') && known.every((d) => typeof d === 'number')) {
      const total = (x.shape as number[]).reduce((a, b) => a * b, 1);
      const rest = (known as number[]).reduce((a, b) => a * b, 1);
      if (total % rest !== 0) fail(ctx, `cannot reshape [${x.shape}] to [${target}]`);
      shape[minus] = total / rest;
    } else {
      shape[minus] = ctx.unknown();
    }
  }
  return [{ dtype: x.dtype, shape }];
});
define(['Flatten'], (ctx) => {
  const x = input(ctx, 0);
  const axis = intAttr(ctx, 'axis', 1);
  const a = axis < 0 ? axis + x.shape.length : axis;
  const prod = (dims: Shape): Dim =>
    dims.every((d) => typeof d === 'number') ? (dims as number[]).reduce((p, d) => p * d, 1) : ctx.unknown();
  return [{ dtype: x.dtype, shape: [prod(x.shape.slice(0, a)), prod(x.shape.slice(a))] }];
});
define(['Transpose'], (ctx) => {
  const x = input(ctx, 0);
  const perm = intsAttr(ctx, 'perm') ?? x.shape.map((_, i) => x.shape.length - 1 - i);
  if (perm.length !== x.shape.length) fail(ctx, `perm [${perm}] does not fit rank ${x.shape.length}`);
  return [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) }];
});
define(['Squeeze'], (ctx) => {
  const x = input(ctx, 0);
  const axes = ctx.inputs[1]
    ? (constantInts(ctx, 1) ?? fail(ctx, 'axes must be a constant'))
    : x.shape.flatMap((d, i) => (d === 1 ? [i] : []));
  const set = new Set(axes.map((a) => normalizeAxis(ctx, a, x.shape.length)));
  return [{ dtype: x.dtype, shape: x.shape.filter((_, i) => !set.has(i)) }];
});
define(['Unsqueeze'], (ctx) => {
  const x = input(ctx, 0);
  const axes = constantInts(ctx, 1) ?? fail(ctx, 'axes must be a constant');
  const rank = x.shape.length + axes.length;
  const set = new Set(axes.map((a) => normalizeAxis(ctx, a, rank)));
  const rest = [...x.shape];
  return [{ dtype: x.dtype, shape: Array.from({ length: rank }, (_, i) => (set.has(i) ? 1 : rest.shift()!)) }];
});
define(['Expand'], (ctx) => {
  const x = input(ctx, 0);
  const target =
    constantInts(ctx, 1) ??
    fail(ctx, 'the target shape must be a constant (or give the node an explicit output shape)');
  return [{ dtype: x.dtype, shape: broadcastShapes(x.shape, target, ctx.op) }];
});
define(['Concat'], (ctx) => {
  const parts = ctx.inputs.map((_, i) => input(ctx, i));
  const axis = normalizeAxis(ctx, intAttr(ctx, 'axis', 0), parts[0]!.shape.length);
  const sizes = parts.map((p) => p.shape[axis]!);
  const total = sizes.every((d) => typeof d === 'number')
    ? (sizes as number[]).reduce((a, b) => a + b, 0)
    : ctx.unknown();
  return [{ dtype: parts[0]!.dtype, shape: parts[0]!.shape.map((d, i) => (i === axis ? total : d)) }];
});
define(['Split'], (ctx) => {
  const x = input(ctx, 0);
  const axis = normalizeAxis(ctx, intAttr(ctx, 'axis', 0), x.shape.length);
  let sizes: Dim[] | undefined = ctx.inputs[1] ? constantInts(ctx, 1) : undefined;
  if (!sizes) {
    const size = x.shape[axis]!;
    if (typeof size !== 'number' || size % ctx.outputCount !== 0)
      fail(ctx, `cannot split size ${size} into ${ctx.outputCount} equal parts`);
    sizes = new Array(ctx.outputCount).fill((size as number) / ctx.outputCount);
  }
  return sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === axis ? s : d)) }));
});
define(['Slice'], (ctx) => {
  const x = input(ctx, 0);
  const starts = constantInts(ctx, 1) ?? fail(ctx, 'starts must be a constant');
  const ends = constantInts(ctx, 2) ?? fail(ctx, 'ends must be a constant');
  const axes = ctx.inputs[3] ? (constantInts(ctx, 3) ?? fail(ctx, 'axes must be a constant')) : starts.map((_, i) => i);
  const steps = ctx.inputs[4] ? (constantInts(ctx, 4) ?? fail(ctx, 'steps must be a constant')) : starts.map(() => 1);
  const shape = [...x.shape];
  axes.forEach((a, j) => {
    const axis = normalizeAxis(ctx, a, x.shape.length);
    const size = x.shape[axis]!;
    if (typeof size !== 'number') {
      shape[axis] = ctx.unknown();
      return;
    }
    const step = steps[j]!;
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
    const norm = (v: number) => (v < 0 ? v + size : v);
    const start = step > 0 ? clamp(norm(starts[j]!), 0, size) : clamp(norm(starts[j]!), -1, size - 1);
    const end = step > 0 ? clamp(norm(ends[j]!), 0, size) : clamp(norm(ends[j]!), -1, size - 1);
    shape[axis] = Math.max(0, Math.ceil((end - start) / step));
  });
  return [{ dtype: x.dtype, shape }];
});
define(['Gather'], (ctx) => {
  const [data, indices] = [input(ctx, 0), input(ctx, 1)];
  const axis = normalizeAxis(ctx, intAttr(ctx, 'axis', 0), data.shape.length);
  return [
    { dtype: data.dtype, shape: [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)] },
  ];
});
define(['GatherElements'], (ctx) => [{ dtype: input(ctx, 0).dtype, shape: input(ctx, 1).shape }]);
define(['ScatterND', 'ScatterElements'], same);
define(['Pad'], (ctx) => {
  const x = input(ctx, 0);
  const pads = constantInts(ctx, 1) ?? fail(ctx, 'pads must be a constant');
  const rank = x.shape.length;
  const axes = ctx.inputs[3]
    ? (constantInts(ctx, 3) ?? fail(ctx, 'axes must be a constant'))
    : x.shape.map((_, i) => i);
  const shape = [...x.shape];
  axes.forEach((a, j) => {
    const axis = normalizeAxis(ctx, a, rank);
    const d = shape[axis]!;
    shape[axis] = typeof d === 'number' ? d + pads[j]! + pads[j + axes.length]! : ctx.unknown();
  });
  return [{ dtype: x.dtype, shape }];
});
define(['Conv'], (ctx) => {
  const [x, w] = [input(ctx, 0), input(ctx, 1)];
  const kernel = (intsAttr(ctx, 'kernel_shape') ?? (w.shape.slice(2) as number[])).map((k) =>
    typeof k === 'number' ? k : fail(ctx, 'kernel size must be static'),
  );
  return [{ dtype: x.dtype, shape: windowed(ctx, x, kernel, w.shape[0]!) }];
});
define(['ConvTranspose'], (ctx) => {
  const [x, w] = [input(ctx, 0), input(ctx, 1)];
  const spatial = x.shape.length - 2;
  const kernel = intsAttr(ctx, 'kernel_shape') ?? (w.shape.slice(2) as number[]);
  const strides = intsAttr(ctx, 'strides') ?? new Array(spatial).fill(1);
  const dilations = intsAttr(ctx, 'dilations') ?? new Array(spatial).fill(1);
  const pads = spatialPads(ctx, spatial);
  const outputPadding = intsAttr(ctx, 'output_padding') ?? new Array(spatial).fill(0);
  const group = intAttr(ctx, 'group', 1);
  const channels = typeof w.shape[1] === 'number' ? w.shape[1] * group : ctx.unknown();
  const outputShape = intsAttr(ctx, 'output_shape');
  const out = kernel.map((k, i) => {
    if (outputShape) return outputShape[i]!;
    const size = x.shape[i + 2]!;
    if (typeof size !== 'number') return ctx.unknown();
    return strides[i]! * (size - 1) + outputPadding[i]! + (dilations[i]! * (k - 1) + 1) - pads[i]! - pads[i + spatial]!;
  });
  return [{ dtype: x.dtype, shape: [x.shape[0]!, channels, ...out] }];
});
define(['MaxPool'], (ctx) => {
  const x = input(ctx, 0);
  const kernel = intsAttr(ctx, 'kernel_shape') ?? fail(ctx, 'kernel_shape is required');
  const shape = windowed(ctx, x, kernel, x.shape[1]!);
  const outputs: TypeAndShape[] = [
    { dtype: x.dtype, shape },
    { dtype: 'int64', shape },
  ];
  return outputs.slice(0, ctx.outputCount);
});
define(['AveragePool'], (ctx) => {
  const x = input(ctx, 0);
  return [
    {
      dtype: x.dtype,
      shape: windowed(ctx, x, intsAttr(ctx, 'kernel_shape') ?? fail(ctx, 'kernel_shape is required'), x.shape[1]!),
    },
  ];
});
define(['GlobalAveragePool', 'GlobalMaxPool'], (ctx) => {
  const x = input(ctx, 0);
  return [{ dtype: x.dtype, shape: x.shape.map((d, i) => (i < 2 ? d : 1)) }];
});
define(['BatchNormalization'], (ctx) => {
  const x = input(ctx, 0);
  const stats = { dtype: x.dtype, shape: [x.shape[1]!] };
  return [{ dtype: x.dtype, shape: x.shape }, stats, stats].slice(0, ctx.outputCount);
});
define(['LayerNormalization'], (ctx) => {
  const x = input(ctx, 0);
  const axis = normalizeAxis(ctx, intAttr(ctx, 'axis', -1), x.shape.length);
  const stats = { dtype: x.dtype, shape: x.shape.map((d, i) => (i < axis ? d : 1)) };
  return [{ dtype: x.dtype, shape: x.shape }, stats, stats].slice(0, ctx.outputCount);
});
define(['Dropout'], (ctx) => {
  const x = input(ctx, 0);
  const outputs: TypeAndShape[] = [
    { dtype: x.dtype, shape: x.shape },
    { dtype: 'bool', shape: x.shape },
  ];
  return outputs.slice(0, ctx.outputCount);
});
define(['Resize'], (ctx) => {
  const x = input(ctx, 0);
  const sizes = ctx.inputs[3] ? constantInts(ctx, 3) : undefined;
  if (sizes) return [{ dtype: x.dtype, shape: sizes }];
  const scales = ctx.constant(2);
  if (!scales) fail(ctx, 'scales or sizes must be a constant');
  const factors = Array.from(scales!.data as Float32Array);
  return [
    {
      dtype: x.dtype,
      shape: x.shape.map((d, i) =>
        typeof d === 'number' ? Math.floor(d * factors[i]!) : factors[i] === 1 ? d : ctx.unknown(),
      ),
    },
  ];
});
define(['Shape'], (ctx) => [{ dtype: 'int64', shape: [input(ctx, 0).shape.length] }]);
define(['Size'], () => [{ dtype: 'int64', shape: [] }]);
define(['ConstantOfShape'], (ctx) => {
  const dims =
    constantInts(ctx, 0) ?? fail(ctx, 'the shape must be a constant (or give the node an explicit output shape)');
  const value = ctx.attrs.value;
  return [{ dtype: value && value.type === 'tensor' ? value.value.dtype : 'float32', shape: dims }];
});
define(['Tile'], (ctx) => {
  const x = input(ctx, 0);
  const repeats = constantInts(ctx, 1) ?? fail(ctx, 'repeats must be a constant');
  return [
    {
      dtype: x.dtype,
      shape: x.shape.map((d, i) => (typeof d === 'number' ? d * repeats[i]! : repeats[i] === 1 ? d : ctx.unknown())),
    },
  ];
});
define(['Range'], (ctx) => {
  const [start, limit, delta] = [ctx.constant(0), ctx.constant(1), ctx.constant(2)];
  const length =
    start && limit && delta
      ? Math.max(0, Math.ceil((Number(limit.data[0]) - Number(start.data[0])) / Number(delta.data[0])))
      : ctx.unknown();
  return [{ dtype: input(ctx, 0).dtype, shape: [length] }];
});
define(['Constant'], (ctx) => {
  const value = ctx.attrs.value;
  if (!value || value.type !== 'tensor') fail(ctx, 'only tensor-valued Constant nodes are supported');
  const t = (value as { value: Tensor }).value;
  return [{ dtype: t.dtype, shape: t.dims }];
});

/** Output types and shapes of a node, or a ShapeError naming the op when it has no rule or its inputs do not fit. */
export function inferShapes(ctx: ShapeContext): TypeAndShape[] {
  const rule = RULES[ctx.op];
  if (!rule) throw new ShapeError(`${ctx.op}: operator not supported by the graph builder (no shape rule)`);
  return rule(ctx);
}

export const supportedOps = (): string[] => Object.keys(RULES).sort();
