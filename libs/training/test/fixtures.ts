import * as ort from 'onnxruntime-node';
import { ops, tensor, type GraphBuilder, type Value } from '@medsyn/onnx-graph';
import { seededRandom } from '@medsyn/random';

/** He-style uniform initialisation from a seeded generator. */
export function init(rand: () => number, dims: number[], fanIn: number) {
  const bound = Math.sqrt(6 / fanIn);
  return tensor(
    'float32',
    dims,
    Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (rand() * 2 - 1) * bound),
  );
}

/** Mean cross-entropy of logits [batch, classes] against one-hot targets, and accuracy. */
export function crossEntropy(g: GraphBuilder, logits: Value, oneHot: Value): { loss: Value; accuracy: Value } {
  const o = ops(g);
  const logp = o.logSoftmax(logits, -1);
  const loss = o.neg(o.reduceMean(o.reduceSum(o.mul(logp, oneHot), [1], false), [0], false));
  const correct = o.cast(o.equal(o.argMax(logits, 1), o.argMax(oneHot, 1)), 'float32');
  return { loss, accuracy: o.reduceMean(correct, [0], false) };
}

/**
 * A small CNN with PyTorch-style names: conv1 -> bn1 -> relu -> maxpool -> conv2 -> relu ->
 * global average pool -> fc. In training mode BatchNorm uses batch statistics and updates its
 * running statistics.
 */
export function smallCnn(g: GraphBuilder, x: Value, classes: number, training: boolean, seed = 1): Value {
  const o = ops(g);
  const rand = seededRandom(seed);
  const conv1 = g.parameter('conv1.weight', init(rand, [8, 1, 3, 3], 9));
  let h = o.conv(x, conv1, undefined, { pads: [1, 1, 1, 1] });
  h = g.scope('bn1', () => {
    const weight = g.parameter('weight', tensor('float32', [8], new Array(8).fill(1)));
    const bias = g.parameter('bias', tensor('float32', [8]));
    const mean = g.parameter('running_mean', tensor('float32', [8]), { trainable: false });
    const variance = g.parameter('running_var', tensor('float32', [8], new Array(8).fill(1)), { trainable: false });
    // ONNX momentum weighs the old statistic: torch's momentum 0.1 is ONNX's 0.9.
    if (!training) return o.batchNormalization(h, weight, bias, mean, variance, 1e-5, 0.9);
    const [y, newMean, newVar] = o.batchNormalizationTraining(h, weight, bias, mean, variance, 1e-5, 0.9);
    g.updateState(mean, newMean);
    g.updateState(variance, newVar);
    return y;
  });
  h = o.maxPool(o.relu(h), { kernel: [2, 2], strides: [2, 2] });
  h = o.relu(
    o.conv(
      h,
      g.parameter('conv2.weight', init(rand, [16, 8, 3, 3], 72)),
      g.parameter('conv2.bias', tensor('float32', [16])),
      { pads: [1, 1, 1, 1] },
    ),
  );
  h = o.flatten(o.globalAveragePool(h), 1);
  return o.gemm(
    h,
    g.parameter('fc.weight', init(rand, [classes, 16], 16)),
    g.parameter('fc.bias', tensor('float32', [classes])),
    { transB: true },
  );
}

/**
 * A separable image task: 8x8 images of noise with a bright 3x3 square, in the left half for
 * class 0 and the right half for class 1.
 */
export function squaresDataset(
  count: number,
  seed: number,
): { images: Float32Array; oneHot: Float32Array; labels: number[] } {
  const rand = seededRandom(seed);
  const images = new Float32Array(count * 64);
  const oneHot = new Float32Array(count * 2);
  const labels: number[] = [];
  for (let n = 0; n < count; n++) {
    const label = rand() < 0.5 ? 0 : 1;
    labels.push(label);
    oneHot[n * 2 + label] = 1;
    for (let i = 0; i < 64; i++) images[n * 64 + i] = rand() * 0.6;
    const top = Math.floor(rand() * 6);
    const left = label === 0 ? Math.floor(rand() * 2) : 4 + Math.floor(rand() * 2);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) images[n * 64 + (top + i) * 8 + left + j] += 1;
  }
  return { images, oneHot, labels };
}

export const batchOf = (data: ReturnType<typeof squaresDataset>, start: number, size: number) => ({
  x: new ort.Tensor('float32', data.images.slice(start * 64, (start + size) * 64), [size, 1, 8, 8]),
  y: new ort.Tensor('float32', data.oneHot.slice(start * 2, (start + size) * 2), [size, 2]),
});
