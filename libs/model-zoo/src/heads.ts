import type { Value } from '@medsyn/onnx-graph';
import { batchNorm2d, conv2d, type ModelBuilder } from './builder';
import { groupNorm } from './unet';

/**
 * The decoder's normalisation. `batch` (segmentation_models_pytorch's default) normalises with
 * batch statistics in training and running statistics at inference, which lag when a head trains
 * for a few dozen steps on a few images; `group` (Wu & He 2018, 8 groups) computes the same
 * statistics per image in training and at inference; `none` leaves the convolutions' biases in.
 */
export type DecoderNorm = 'batch' | 'group' | 'none';

export interface UNetDecoderConfig {
  /** Channels of the encoder stages given, shallow to deep (e.g. ResNet-18: [64, 128, 256, 512]). */
  encoderChannels: number[];
  /** Channels after each upsampling step, deep to shallow (one per skip connection). */
  decoderChannels: number[];
  classes: number;
  /** Upsampling from the shallowest stage back to the input (ResNet's layer1: 4). */
  finalUpsample: number;
  /** Default `batch`. */
  norm?: DecoderNorm;
}

/** Largest group count <= 8 that divides the channels. */
const groupsOf = (channels: number) => [8, 4, 2, 1].find((n) => channels % n === 0)!;

/** conv 3x3 -> norm -> ReLU, named `<name>.0` and `<name>.1` like nn.Sequential; the conv has a bias only without a norm. */
function convNormRelu(
  b: ModelBuilder,
  name: string,
  x: Value,
  inChannels: number,
  outChannels: number,
  norm: DecoderNorm,
): Value {
  return b.g.scope(name, () => {
    const conv = conv2d(b, '0', x, inChannels, outChannels, 3, { padding: 1, bias: norm === 'none' });
    if (norm === 'none') return b.o.relu(conv);
    return b.o.relu(
      norm === 'batch'
        ? batchNorm2d(b, '1', conv, outChannels)
        : groupNorm(b, '1', conv, outChannels, groupsOf(outChannels), 1e-5),
    );
  });
}

/**
 * U-Net decoder (Ronneberger et al. 2015) over a frozen or trained encoder's multi-scale
 * features: from the deepest stage, upsample x2, concatenate the next shallower stage, two
 * conv-norm-ReLU; finally upsample to the input size and a 3x3 segmentation head. Returns per-class
 * logits [batch, classes, H, W]. Names follow segmentation_models_pytorch (`decoder.blocks.0.conv1.0`).
 */
export function unetDecoder(b: ModelBuilder, stages: Value[], config: UNetDecoderConfig): Value {
  const { g, o } = b;
  if (stages.length !== config.encoderChannels.length)
    throw new Error(`got ${stages.length} stages for ${config.encoderChannels.length} encoder channel counts`);
  if (config.decoderChannels.length !== stages.length - 1)
    throw new Error(`decoderChannels needs ${stages.length - 1} entries (one per skip connection)`);
  let h = stages[stages.length - 1]!;
  let channels = config.encoderChannels[stages.length - 1]!;
  g.scope('decoder', () =>
    g.scope('blocks', () => {
      config.decoderChannels.forEach((out, i) => {
        const skipIndex = stages.length - 2 - i;
        const skipChannels = config.encoderChannels[skipIndex]!;
        const joined = o.concat([o.resize(h, [1, 1, 2, 2], 'nearest'), stages[skipIndex]!], 1);
        const norm = config.norm ?? 'batch';
        h = g.scope(String(i), () =>
          convNormRelu(
            b,
            'conv2',
            convNormRelu(b, 'conv1', joined, channels + skipChannels, out, norm),
            out,
            out,
            norm,
          ),
        );
        channels = out;
      });
    }),
  );
  if (config.finalUpsample > 1) h = o.resize(h, [1, 1, config.finalUpsample, config.finalUpsample], 'nearest');
  return g.scope('segmentation_head', () => conv2d(b, '0', h, channels, config.classes, 3, { padding: 1 }));
}

export interface DetectionHeadConfig {
  inChannels: number;
  /** Width of the shared towers. */
  channels: number;
  classes: number;
  /** Conv-ReLU layers in each tower (FCOS: 4). */
  towerDepth?: number;
}

export interface DetectionOutputs {
  /** Per-location class logits [batch, classes, h, w]. */
  classLogits: Value;
  /** Per-location distances to the box's left, top, right and bottom edges, in feature cells (>= 0) [batch, 4, h, w]. */
  boxes: Value;
  /** Per-location centerness logits [batch, 1, h, w]. */
  centerness: Value;
}

/**
 * A single-stage anchor-free detection head (FCOS, Tian et al. 2019) on one feature map: a class
 * tower and a box tower of 3x3 conv + ReLU; class logits, exp-activated edge distances and
 * centerness per location. Decoding, NMS and the loss belong to the evaluator.
 */
export function detectionHead(b: ModelBuilder, feature: Value, config: DetectionHeadConfig): DetectionOutputs {
  const { g, o } = b;
  const depth = config.towerDepth ?? 2;
  return g.scope('head', () => {
    const tower = (name: string) => {
      let h = feature;
      let channels = config.inChannels;
      g.scope(name, () => {
        for (let i = 0; i < depth; i++) {
          h = o.relu(conv2d(b, String(2 * i), h, channels, config.channels, 3, { padding: 1 }));
          channels = config.channels;
        }
      });
      return h;
    };
    const classes = tower('cls_tower');
    const boxes = tower('bbox_tower');
    return {
      classLogits: conv2d(b, 'cls_logits', classes, config.channels, config.classes, 3, { padding: 1 }),
      boxes: o.exp(conv2d(b, 'bbox_pred', boxes, config.channels, 4, 3, { padding: 1 })),
      centerness: conv2d(b, 'centerness', boxes, config.channels, 1, 3, { padding: 1 }),
    };
  });
}
