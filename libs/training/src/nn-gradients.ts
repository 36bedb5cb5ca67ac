import { tensor, type Value } from '@medsyn/onnx-graph';
import type { GradContext } from './grad-context';

/** Conv window settings of a node, with ONNX defaults filled in (2-D). */
export interface Window {
  kernel: number[];
  strides: number[];
  pads: number[];
  dilations: number[];
  group: number;
}

export function windowOf(c: GradContext, weightShape?: readonly (number | string)[]): Window {
  const kernel =
    c.ints('kernel_shape') ?? (weightShape?.slice(2) as number[] | undefined) ?? c.fail('kernel size unknown');
  if (kernel.length !== 2 || kernel.some((k) => typeof k !== 'number'))
    c.fail('only static 2-D windows are differentiable here');
  if (c.string('auto_pad', 'NOTSET') !== 'NOTSET') c.fail('auto_pad is not supported; use explicit pads');
  return {
    kernel,
    strides: c.ints('strides') ?? [1, 1],
    pads: c.ints('pads') ?? [0, 0, 0, 0],
    dilations: c.ints('dilations') ?? [1, 1],
    group: c.int('group', 1),
  };
}

function staticSpatial(c: GradContext, v: Value): [number, number] {
  const [h, w] = v.shape.slice(2);
  if (typeof h !== 'number' || typeof w !== 'number') c.fail(`${v.name} needs static spatial sizes`);
  return [h as number, w as number];
}

/**
 * The adjoint of a convolution with respect to its input: a transposed convolution of dy with
 * the same weights, with output_padding restoring the rows and columns the forward stride dropped.
 */
export function convInputGradient(c: GradContext, dy: Value, w: Value, x: Value, win: Window): Value {
  if (win.strides.every((s) => s === 1)) {
    const viaConv = strideOneInputGradient(c, dy, w, win);
    if (viaConv) return viaConv;
  }
  const [xh, xw] = staticSpatial(c, x);
  const [yh, yw] = staticSpatial(c, dy);
  const span = (i: number) => win.dilations[i]! * (win.kernel[i]! - 1) + 1;
  const outputPadding = [
    xh - (win.strides[0]! * (yh - 1) + span(0) - win.pads[0]! - win.pads[2]!),
    xw - (win.strides[1]! * (yw - 1) + span(1) - win.pads[1]! - win.pads[3]!),
  ];
  return c.o.convTranspose(dy, w, undefined, {
    strides: win.strides,
    pads: win.pads,
    dilations: win.dilations,
    group: win.group,
    outputPadding: outputPadding.some((p) => p) ? outputPadding : undefined,
  });
}

/**
 * The gradient of a convolution's weights, as im2col + one MatMul per group with the batch folded
 * into the inner dimension:
 * dW[o, c, kh, kw] = sum over n, i, j of dy[n, o, i, j] * x_padded[n, c, i*s + kh*d, j*s + kw*d].
 * x and dy are first made channel-major ([c, n, h, w]), so that each kernel tap (a strided Slice)
 * stacks into columns [c * k, n * i * j] without moving the K-times larger columns again.
 * (im2col + MatMul was measured faster on onnxruntime CPU than the batch/channel-swapped Conv.)
 */
export function convWeightGradient(
  c: GradContext,
  x: Value,
  dy: Value,
  weightShape: readonly number[],
  win: Window,
): Value {
  // Few input channels per group (an RGB stem): per-tap products would be MatMuls a few columns
  // wide, and the strided per-row Slices of a large image dominate; the phase-flattened columns
  // make one wide MatMul (ResNet-18's stem: 3.5x faster, measured). Elsewhere the per-tap
  // products measured as fast or faster.
  if (weightShape[1]! < 16 && weightShape[2]! * weightShape[3]! > 1) {
    const flat = phaseColumnsWeightGradient(c, x, dy, weightShape, win);
    if (flat) return flat;
  }
  const [outChannels, inPerGroup, kh, kw] = weightShape as [number, number, number, number];
  const [yh, yw] = staticSpatial(c, dy);
  const g = win.group;
  const channelMajor = c.o.transpose(x, [1, 0, 2, 3]);
  const hasPads = win.pads.some((p) => p !== 0);
  const padded = hasPads
    ? c.o.pad(channelMajor, [0, 0, win.pads[0]!, win.pads[1]!, 0, 0, win.pads[2]!, win.pads[3]!])
    : channelMajor;
  const [xh, xw] = staticSpatial(c, padded);
  const taps: Value[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const top = i * win.dilations[0]!;
      const left = j * win.dilations[1]!;
      const bottom = top + win.strides[0]! * (yh - 1) + 1;
      const right = left + win.strides[1]! * (yw - 1) + 1;
      const whole =
        top === 0 && left === 0 && bottom === xh && right === xw && win.strides[0] === 1 && win.strides[1] === 1;
      const tap = whole
        ? padded
        : c.o.slice(padded, [top, left], [bottom, right], [2, 3], [win.strides[0]!, win.strides[1]!]);
      taps.push(tap);
    }
  }
  // Output gradient [n, o, i, j] -> [g, o/g, n i j].
  const grads = c.o.reshape(c.o.transpose(dy, [1, 0, 2, 3]), [g, outChannels / g, -1]);
  const perTap = (tap: Value) => c.o.matmul(grads, c.o.transpose(c.o.reshape(tap, [g, inPerGroup, -1]), [0, 2, 1]));
  if (taps.length === 1) return c.o.reshape(perTap(taps[0]!), [outChannels, inPerGroup, kh, kw]);
  const batch = x.shape[0];
  const positions = (typeof batch === 'number' ? batch : 1) * yh * yw;
  if (positions >= 2 * inPerGroup) {
    // Long inner dimension (early layers): one MatMul per tap and a small Concat of weight-sized
    // results beats stacking the K-times larger columns (measured per ResNet-18 layer shape).
    const dw = c.o.concat(
      taps.map((tap) => c.o.unsqueeze(perTap(tap), [3])),
      3,
    );
    return c.o.reshape(dw, [outChannels, inPerGroup, kh, kw]);
  }
  // Short inner dimension (deep layers): one large MatMul over stacked columns
  // [c, k, n, i, j] -> [g, (c/g) k, n i j].
  const columns = c.o.reshape(
    c.o.concat(
      taps.map((tap) => c.o.unsqueeze(tap, [1])),
      1,
    ),
    [g, inPerGroup * kh * kw, -1],
  );
  const dw = c.o.matmul(grads, c.o.transpose(columns, [0, 2, 1]));
  return c.o.reshape(dw, [outChannels, inPerGroup, kh, kw]);
}

/**
 * The weight gradient with every kernel tap read as one contiguous run. The padded input is split
 * into its stride phases (x_pad[n, c, r*s + a, q*s + b] -> phase (a, b), one Transpose that also
 * makes it channel-major) and each phase flattened over (n, row, column): the input a tap meets at
 * output position (n, r, q) then sits at one fixed offset from that position's own index, for
 * every n, r and q. So the im2col columns of a tap are one unit-step Slice of length N*Hs*Ws per
 * channel (memcpy speed, where strided per-row Slices were element copies), and dy, zero-padded to
 * the phase grid Hs x Ws, multiplies them in one MatMul. The padding rows and columns add
 * Hs*Ws / (yh*yw) - 1 to the MatMul's inner dimension: undefined (use the strided im2col) where
 * that exceeds a third.
 */
function phaseColumnsWeightGradient(
  c: GradContext,
  x: Value,
  dy: Value,
  weightShape: readonly number[],
  win: Window,
): Value | undefined {
  const [outChannels, inPerGroup, kh, kw] = weightShape as [number, number, number, number];
  const [yh, yw] = staticSpatial(c, dy);
  const [xh, xw] = staticSpatial(c, x);
  const batch = x.shape[0];
  const channels = x.shape[1];
  if (typeof batch !== 'number' || typeof channels !== 'number') return undefined;
  const [sh, sw] = win.strides as [number, number];
  const [dh, dw] = win.dilations as [number, number];
  const [pTop, pLeft, pBottom, pRight] = win.pads as [number, number, number, number];
  // Tap (i, j) reads phase (i*dh mod sh, j*dw mod sw) at offset (floor(i*dh / sh), floor(j*dw / sw)).
  const reach = [Math.floor(((kh - 1) * dh) / sh), Math.floor(((kw - 1) * dw) / sw)] as const;
  const hs = Math.max(Math.ceil((xh + pTop + pBottom) / sh), yh + reach[0]);
  const ws = Math.max(Math.ceil((xw + pLeft + pRight) / sw), yw + reach[1]);
  if (hs * ws > (4 / 3) * yh * yw) return undefined;
  const o = c.o;
  const g = win.group;
  const padded = o.pad(x, [0, 0, pTop, pLeft, 0, 0, hs * sh - xh - pTop, ws * sw - xw - pLeft]);
  // [n, c, hs, sh, ws, sw] -> [c, sh, sw, n, hs, ws]: channel-major, one block per phase.
  const phases = o.reshape(o.transpose(o.reshape(padded, [batch, channels, hs, sh, ws, sw]), [1, 3, 5, 0, 2, 4]), [
    channels,
    sh,
    sw,
    batch * hs * ws,
  ]);
  const length = batch * hs * ws;
  const tail = reach[0] * ws + reach[1];
  const flat = tail ? o.pad(phases, [0, 0, 0, 0, 0, 0, 0, tail]) : phases;
  const taps: Value[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const [a, b] = [(i * dh) % sh, (j * dw) % sw];
      const offset = Math.floor((i * dh) / sh) * ws + Math.floor((j * dw) / sw);
      const whole = sh === 1 && sw === 1 && offset === 0 && tail === 0;
      taps.push(whole ? flat : o.slice(flat, [a, b, offset], [a + 1, b + 1, offset + length], [1, 2, 3]));
    }
  }
  // dy [n, o, yh, yw] -> zero-padded to the phase grid, [g, o/g, n hs ws].
  const grads = o.reshape(o.transpose(o.pad(dy, [0, 0, 0, 0, 0, 0, hs - yh, ws - yw]), [1, 0, 2, 3]), [
    g,
    outChannels / g,
    length,
  ]);
  // Columns [c, k, 1, L] -> [g, (c/g) k, L].
  const columns = o.reshape(taps.length === 1 ? taps[0]! : o.concat(taps, 1), [g, inPerGroup * kh * kw, length]);
  return o.reshape(o.matmul(grads, o.transpose(columns, [0, 2, 1])), [outChannels, inPerGroup, kh, kw]);
}

function staticWeightShape(c: GradContext, w: Value): number[] {
  if (!w.shape.every((d) => typeof d === 'number')) c.fail('weights need a static shape');
  return w.shape as number[];
}

export function convGradient(c: GradContext): (Value | undefined)[] {
  const [x, w] = [c.x(0), c.x(1)];
  const dy = c.dyOrZeros();
  const win = windowOf(c, w.shape);
  return [
    c.needs(0) ? convInputGradient(c, dy, w, x, win) : undefined,
    c.needs(1) ? convWeightGradient(c, x, dy, staticWeightShape(c, w), win) : undefined,
    c.inputs[2] && c.needs(2) ? c.o.reduceSum(dy, [0, 2, 3], false) : undefined,
  ];
}

/** ConvTranspose is the adjoint of Conv: its input gradient is a Conv, its weight gradient Conv's with roles swapped. */
/**
 * The stride-1 input gradient as a plain Conv, which onnxruntime's CPU kernels run 1.1-1.7x faster
 * than ConvTranspose (measured per ResNet layer shape). A stride-1 transposed convolution is a
 * convolution with the kernel flipped in space and its in/out channels swapped per group; the
 * flip goes on whichever is smaller: the weights (early layers) or dy and the result (deep
 * layers: flip(conv(flip(dy), W')) with the pads' sides exchanged). Undefined when the padding
 * exceeds the kernel's reach (then ConvTranspose is used).
 */
function strideOneInputGradient(c: GradContext, dy: Value, w: Value, win: Window): Value | undefined {
  const [outChannels, inPerGroup, kh, kw] = w.shape as [number, number, number, number];
  const reach = [win.dilations[0]! * (kh - 1), win.dilations[1]! * (kw - 1)];
  const [pTop, pLeft, pBottom, pRight] = win.pads as [number, number, number, number];
  const pads = [reach[0]! - pTop, reach[1]! - pLeft, reach[0]! - pBottom, reach[1]! - pRight];
  if (pads.some((p) => p < 0) || !dy.shape.slice(1).every((d) => typeof d === 'number')) return undefined;
  const g = win.group;
  // [out, in/g, kh, kw] -> [in, out/g, kh, kw]: per group, in and out channels exchanged.
  const swapped = c.o.reshape(
    c.o.transpose(c.o.reshape(w, [g, outChannels / g, inPerGroup, kh, kw]), [0, 2, 1, 3, 4]),
    [g * inPerGroup, outChannels / g, kh, kw],
  );
  const flip = (v: Value, h: number, wd: number) => c.o.slice(v, [-1, -1], [-h - 1, -wd - 1], [2, 3], [-1, -1]);
  const batch = typeof dy.shape[0] === 'number' ? dy.shape[0] : 16;
  const activations = batch * (dy.shape.slice(1) as number[]).reduce((a, b) => a * b, 1);
  if (outChannels * inPerGroup * kh * kw <= activations) {
    return c.o.conv(dy, flip(swapped, kh, kw), undefined, { pads, dilations: win.dilations, group: g });
  }
  const [, , yh, yw] = dy.shape as number[];
  const result = c.o.conv(flip(dy, yh!, yw!), swapped, undefined, {
    pads: [pads[2]!, pads[3]!, pads[0]!, pads[1]!],
    dilations: win.dilations,
    group: g,
  });
  const [, , rh, rw] = result.shape as number[];
  return flip(result, rh!, rw!);
}

export function convTransposeGradient(c: GradContext): (Value | undefined)[] {
  const [x, w] = [c.x(0), c.x(1)];
  const dy = c.dyOrZeros();
  const win = windowOf(c, w.shape);
  if (c.ints('output_shape')) c.fail('output_shape is not supported; use output_padding');
  return [
    c.needs(0)
      ? c.o.conv(dy, w, undefined, { strides: win.strides, pads: win.pads, dilations: win.dilations, group: win.group })
      : undefined,
    c.needs(1) ? convWeightGradient(c, dy, x, staticWeightShape(c, w), win) : undefined,
    c.inputs[2] && c.needs(2) ? c.o.reduceSum(dy, [0, 2, 3], false) : undefined,
  ];
}

/** MaxPool: scatter-add dy to the positions that were the maxima (the indices output, recomputed if unused). */
export function maxPoolGradient(c: GradContext): (Value | undefined)[] {
  const x = c.x(0);
  const win = windowOf(c);
  const indices =
    c.outputs[1] ??
    c.o.maxPoolWithIndices(x, {
      kernel: win.kernel,
      strides: win.strides,
      pads: win.pads,
      ceilMode: c.int('ceil_mode', 0) === 1,
    })[1];
  if (c.int('storage_order', 0) !== 0) c.fail('only row-major storage_order is supported');
  const flat = c.o.scatterElements(
    c.o.reshape(c.o.zerosLike(x), [-1]),
    c.o.reshape(indices, [-1]),
    c.o.reshape(c.dyOrZeros(), [-1]),
    0,
    'add',
  );
  return [c.reshapeTo(flat, x)];
}

/** AveragePool: spread each output gradient evenly over its window (a depthwise transposed convolution). */
export function averagePoolGradient(c: GradContext): (Value | undefined)[] {
  const x = c.x(0);
  const win = windowOf(c);
  if (c.int('ceil_mode', 0) === 1) c.fail('ceil_mode is not supported');
  const channels = x.shape[1];
  if (typeof channels !== 'number') c.fail('the channel count must be static');
  const [kh, kw] = win.kernel as [number, number];
  const ones = c.g.constant(
    tensor(x.dtype, [channels as number, 1, kh, kw], new Array((channels as number) * kh * kw).fill(1)),
    'pool_ones',
  );
  let dy = c.dyOrZeros();
  const padded = win.pads.some((p) => p !== 0);
  if (!padded || c.int('count_include_pad', 0) === 1) {
    dy = c.o.div(dy, c.scalar(kh * kw, dy));
  } else {
    // Without count_include_pad, border windows divide by the number of real cells they cover.
    const [h, w] = staticSpatial(c, x);
    const one = c.g.constant(tensor(x.dtype, [1, 1, h, w], new Array(h * w).fill(1)), 'pool_cells');
    const kernelOnes = c.g.constant(tensor(x.dtype, [1, 1, kh, kw], new Array(kh * kw).fill(1)), 'pool_kernel');
    dy = c.o.div(dy, c.o.conv(one, kernelOnes, undefined, { strides: win.strides, pads: win.pads }));
  }
  return [convInputGradient(c, dy, ones, x, { ...win, group: channels as number, dilations: [1, 1] })];
}

/** LayerNormalization over axes axis..rank-1, with Mean and InvStdDev from the node's outputs (or recomputed). */
export function layerNormGradient(c: GradContext): (Value | undefined)[] {
  const [x, scale] = [c.x(0), c.x(1)];
  const rank = x.shape.length;
  const axis = (c.int('axis', -1) + rank) % rank;
  const normAxes = Array.from({ length: rank - axis }, (_, i) => axis + i);
  const batchAxes = Array.from({ length: axis }, (_, i) => i);
  const eps = c.float('epsilon', 1e-5);
  const mean = c.outputs[1] ?? c.o.reduceMean(x, normAxes, true);
  const centered = c.o.sub(x, mean);
  const invStd =
    c.outputs[2] ??
    c.o.reciprocal(c.o.sqrt(c.o.add(c.o.reduceMean(c.o.mul(centered, centered), normAxes, true), c.scalar(eps, x))));
  const xhat = c.o.mul(centered, invStd);
  const dy = c.dyOrZeros();
  const sumOverBatch = (v: Value) => (batchAxes.length ? c.o.reduceSum(v, batchAxes, false) : v);
  const dxhat = c.o.mul(dy, scale);
  const dx = c.o.mul(
    invStd,
    c.o.sub(
      c.o.sub(dxhat, c.o.reduceMean(dxhat, normAxes, true)),
      c.o.mul(xhat, c.o.reduceMean(c.o.mul(dxhat, xhat), normAxes, true)),
    ),
  );
  return [
    c.needs(0) ? dx : undefined,
    c.needs(1) ? c.reshapeTo(sumOverBatch(c.o.mul(dy, xhat)), scale) : undefined,
    c.inputs[2] && c.needs(2) ? c.reshapeTo(sumOverBatch(dy), c.x(2)) : undefined,
  ];
}

/**
 * BatchNormalization. In training mode the output used the batch's statistics, so the gradient
 * flows through them too (Ioffe & Szegedy 2015, eq. in section 3); in inference mode the
 * running statistics are constants.
 */
export function batchNormGradient(c: GradContext): (Value | undefined)[] {
  const [x, scale, , runningMean, runningVar] = [c.x(0), c.x(1), c.x(2), c.x(3), c.x(4)];
  const eps = c.float('epsilon', 1e-5);
  const rank = x.shape.length;
  const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
  const perChannel = (v: Value) => c.o.reshape(v, [-1, ...new Array(rank - 2).fill(1)]);
  const dy = c.dyOrZeros();
  // Batch statistics either computed by the node (training_mode) or fed to it by
  // ops.batchNormalizationTraining (annotated): both take the fused training formula, and in the
  // second case no gradient needs to flow into the statistics' own nodes.
  const batchInputs = c.g.annotations.get(c.node.name)?.batchStatistics === true;
  if (c.int('training_mode', 0) === 1 || batchInputs) return batchStatisticsGradient(c, dy, axes);
  const invStd = c.o.reciprocal(c.o.sqrt(c.o.add(perChannel(runningVar), c.scalar(eps, x))));
  const gain = c.o.mul(perChannel(scale), invStd);
  const centered = c.o.sub(x, perChannel(runningMean));
  // The mean and variance are inputs; when they are computed from the batch
  // (ops.batchNormalizationTraining), their gradients carry the batch-statistics terms onwards:
  // d mean = -sum(dy * gain), d var = -1/2 sum(dy * scale * (x - mean)) * invStd^3.
  const dMean = c.needs(3) ? c.o.neg(c.o.reduceSum(c.o.mul(dy, gain), axes, false)) : undefined;
  const dVariance = c.needs(4)
    ? c.o.mul(
        c.o.reduceSum(c.o.mul(c.o.mul(dy, perChannel(scale)), centered), axes, false),
        c.o.mul(c.scalar(-0.5, x), c.o.reshape(c.o.mul(invStd, c.o.mul(invStd, invStd)), [-1])),
      )
    : undefined;
  return [
    c.needs(0) ? c.o.mul(dy, gain) : undefined,
    c.needs(1) ? c.o.reduceSum(c.o.mul(dy, c.o.mul(centered, invStd)), axes, false) : undefined,
    c.needs(2) ? c.o.reduceSum(dy, axes, false) : undefined,
    dMean,
    dVariance,
  ];
}

/**
 * BatchNormalization over the batch's own statistics, in five passes over the activations and
 * two reductions (PyTorch's batch_norm_backward computes the same two sums):
 *   dscale = sum(dy * xhat), dbias = sum(dy), and with gain = scale / std, M values per channel,
 *   dx = gain * (dy - dbias / M - xhat * dscale / M) = gain * dy + BN(x; -gain * dscale / M, -gain * dbias / M).
 * The per-channel affine map of xhat is an inference-mode BatchNormalization node over x with the
 * batch statistics (one pass, no xhat tensor), and xhat itself is the same node with unit scale.
 */
function batchStatisticsGradient(c: GradContext, dy: Value, axes: number[]): (Value | undefined)[] {
  const [x, scale] = [c.x(0), c.x(1)];
  const o = c.o;
  const eps = c.float('epsilon', 1e-5);
  const computed = c.int('training_mode', 0) === 1;
  const perChannel = (v: Value) => o.reshape(v, [-1, ...axes.slice(1).map(() => 1)]);
  const mean = computed ? o.reduceMean(x, axes, false) : c.x(3);
  const centered = computed ? o.sub(x, perChannel(mean)) : undefined;
  const variance = centered ? o.reduceMean(o.mul(centered, centered), axes, false) : c.x(4);
  // a * xhat + b per channel, in one pass over x.
  const affine = (a: Value, b: Value) => o.batchNormalization(x, a, b, mean, variance, eps);
  const channels = scale.shape[0];
  const ones =
    typeof channels === 'number'
      ? o.const(x.dtype, [channels], new Array(channels).fill(1))
      : o.add(o.mul(scale, c.scalar(0, scale)), c.scalar(1, scale));
  const zeros =
    typeof channels === 'number'
      ? o.const(x.dtype, [channels], new Array(channels).fill(0))
      : o.mul(scale, c.scalar(0, scale));
  const dScale = o.reduceSum(o.mul(dy, affine(ones, zeros)), axes, false);
  const dBias = o.reduceSum(dy, axes, false);
  if (!c.needs(0)) return [undefined, c.needs(1) ? dScale : undefined, c.needs(2) ? dBias : undefined];
  const gain = o.mul(scale, o.reciprocal(o.sqrt(o.add(variance, c.scalar(eps, variance)))));
  // M = elements per channel, at run time when the shape is symbolic.
  const count = x.shape.every((d) => typeof d === 'number')
    ? c.scalar((x.shape as number[]).reduce((a, b) => a * b, 1) / (x.shape[1] as number), x)
    : o.div(o.cast(c.g.op('Size', [x]), x.dtype), o.cast(o.slice(o.shape(x), [1], [2]), x.dtype));
  const perValue = o.neg(o.div(gain, count));
  const rest = affine(o.mul(perValue, dScale), o.mul(perValue, dBias));
  const dx = o.add(o.mul(dy, perChannel(gain)), rest);
  return [dx, c.needs(1) ? dScale : undefined, c.needs(2) ? dBias : undefined];
}

/** Dropout: the kept elements' gradient, scaled as the forward pass scaled them. */
export function dropoutGradient(c: GradContext): (Value | undefined)[] {
  const training = c.inputs[2] ? (c.constantInts(2)?.[0] ?? c.fail('training_mode must be a constant')) : 0;
  if (!training) return [c.dy[0]];
  const mask = c.outputs[1] ?? c.fail('a training-mode Dropout needs its mask output for the gradient');
  const ratio = c.inputs[1] ? Number(c.g.constantValue(c.x(1))?.data[0] ?? c.fail('ratio must be a constant')) : 0.5;
  return [c.o.mul(c.o.mul(c.dyOrZeros(), c.o.cast(mask, c.y().dtype)), c.scalar(1 / (1 - ratio), c.y()))];
}

/**
 * Resize by integer factors. Nearest (floor, asymmetric): each input cell was copied to a block,
 * so its gradient is the block's sum. Linear (half_pixel): Y = A_h X A_w^T with interpolation
 * matrices built here, so dX = A_h^T dY A_w.
 */
export function resizeGradient(c: GradContext): (Value | undefined)[] {
  const x = c.x(0);
  const [h, w] = staticSpatial(c, x);
  const [yh, yw] = staticSpatial(c, c.y());
  const dy = c.dyOrZeros();
  const mode = c.string('mode', 'nearest');
  if (mode === 'nearest') {
    if (yh % h !== 0 || yw % w !== 0) c.fail('nearest resize needs integer scale factors');
    const blocks = c.o.reshape(dy, [0, 0, h, yh / h, w, yw / w]);
    return [c.o.reduceSum(blocks, [3, 5], false)];
  }
  if (mode === 'linear') {
    if (c.string('coordinate_transformation_mode', 'half_pixel') !== 'half_pixel')
      c.fail('linear resize must use half_pixel coordinates');
    const rowsT = c.g.constant(transpose(interpolationMatrix(x.dtype, yh, h)), 'resize_rows_t');
    const cols = c.g.constant(interpolationMatrix(x.dtype, yw, w), 'resize_cols');
    return [c.o.matmul(c.o.matmul(rowsT, dy), cols)];
  }
  return c.fail(`mode ${mode} is not supported`);
}

/** Rows of linear (half-pixel, edge-clamped) interpolation from n inputs to m outputs. */
function interpolationMatrix(dtype: Value['dtype'], m: number, n: number) {
  const values = new Array(m * n).fill(0);
  for (let i = 0; i < m; i++) {
    const source = Math.min(Math.max((i + 0.5) * (n / m) - 0.5, 0), n - 1);
    const lo = Math.floor(source);
    const hi = Math.min(lo + 1, n - 1);
    const frac = source - lo;
    values[i * n + lo] += 1 - frac;
    values[i * n + hi] += frac;
  }
  return tensor(dtype, [m, n], values);
}

function transpose(t: ReturnType<typeof interpolationMatrix>) {
  const [m, n] = t.dims as [number, number];
  const out = new Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = Number(t.data[i * n + j]);
  return tensor(t.dtype, [n, m], out);
}
