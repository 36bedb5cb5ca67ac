import type { Value } from '@medsyn/onnx-graph';
import { batchNorm2d, conv2d, linear, type ModelBuilder } from './builder';

export interface ResNetConfig {
  /** 18, 34 (basic blocks) or 50, 101 (bottlenecks), as in He et al. 2016. */
  depth: 18 | 34 | 50 | 101;
  /** Channels of the stem and first stage (torchvision: 64). */
  width?: number;
  /** Input channels (3 for RGB, 1 for radiographs). */
  inChannels?: number;
  /** A classification head `fc` with this many classes (omit for an encoder). */
  classes?: number;
}

export interface ResNetOutputs {
  /** Globally average-pooled features [batch, channels]. */
  features: Value;
  /** Outputs of layer1..layer4 (strides 4, 8, 16, 32): for local alignment, segmentation, detection. */
  stages: Value[];
  /** The stem after conv1-bn1-relu (stride 2), the decoder's finest skip connection. */
  stem: Value;
  logits?: Value;
}

const LAYOUT: Record<ResNetConfig['depth'], { blocks: number[]; bottleneck: boolean }> = {
  18: { blocks: [2, 2, 2, 2], bottleneck: false },
  34: { blocks: [3, 4, 6, 3], bottleneck: false },
  50: { blocks: [3, 4, 6, 3], bottleneck: true },
  101: { blocks: [3, 4, 23, 3], bottleneck: true },
};

/** Output channels of a ResNet's last stage. */
export function resnetChannels(config: ResNetConfig): number {
  return (config.width ?? 64) * 8 * (LAYOUT[config.depth].bottleneck ? 4 : 1);
}

/**
 * ResNet (He et al. 2016) as torchvision builds it (v1.5: the stride sits on the 3x3 conv of a
 * bottleneck), with torchvision's parameter names, so its checkpoints load by name.
 */
export function resnet(b: ModelBuilder, x: Value, config: ResNetConfig): ResNetOutputs {
  const { o } = b;
  const width = config.width ?? 64;
  const { blocks, bottleneck } = LAYOUT[config.depth];
  const expansion = bottleneck ? 4 : 1;
  let h = conv2d(b, 'conv1', x, config.inChannels ?? 3, width, 7, { stride: 2, padding: 3, bias: false });
  const stem = o.relu(batchNorm2d(b, 'bn1', h, width));
  h = o.maxPool(stem, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] });
  let inplanes = width;
  const stages: Value[] = [];
  blocks.forEach((count, stage) => {
    const planes = width * 2 ** stage;
    h = b.g.scope(`layer${stage + 1}`, () => {
      let y = h;
      for (let i = 0; i < count; i++) {
        const stride = i === 0 && stage > 0 ? 2 : 1;
        y = b.g.scope(String(i), () => (bottleneck ? bottleneckBlock : basicBlock)(b, y, inplanes, planes, stride));
        inplanes = planes * expansion;
      }
      return y;
    });
    stages.push(h);
  });
  const features = o.flatten(o.globalAveragePool(h), 1);
  const logits = config.classes ? linear(b, 'fc', features, inplanes, config.classes) : undefined;
  return { features, stages, stem, logits };
}

function shortcut(b: ModelBuilder, x: Value, inplanes: number, outplanes: number, stride: number): Value {
  if (stride === 1 && inplanes === outplanes) return x;
  return b.g.scope('downsample', () =>
    batchNorm2d(b, '1', conv2d(b, '0', x, inplanes, outplanes, 1, { stride, bias: false }), outplanes),
  );
}

function basicBlock(b: ModelBuilder, x: Value, inplanes: number, planes: number, stride: number): Value {
  const { o } = b;
  let h = o.relu(
    batchNorm2d(b, 'bn1', conv2d(b, 'conv1', x, inplanes, planes, 3, { stride, padding: 1, bias: false }), planes),
  );
  h = batchNorm2d(b, 'bn2', conv2d(b, 'conv2', h, planes, planes, 3, { padding: 1, bias: false }), planes);
  return o.relu(o.add(h, shortcut(b, x, inplanes, planes, stride)));
}

function bottleneckBlock(b: ModelBuilder, x: Value, inplanes: number, planes: number, stride: number): Value {
  const { o } = b;
  let h = o.relu(batchNorm2d(b, 'bn1', conv2d(b, 'conv1', x, inplanes, planes, 1, { bias: false }), planes));
  h = o.relu(
    batchNorm2d(b, 'bn2', conv2d(b, 'conv2', h, planes, planes, 3, { stride, padding: 1, bias: false }), planes),
  );
  h = batchNorm2d(b, 'bn3', conv2d(b, 'conv3', h, planes, planes * 4, 1, { bias: false }), planes * 4);
  return o.relu(o.add(h, shortcut(b, x, inplanes, planes * 4, stride)));
}
