import { tensor, type Value } from '@medsyn/onnx-graph';
import { attention, conv2d, dropout, layerNorm, linear, normal, uniform, type ModelBuilder } from './builder';

export interface VitConfig {
  imageSize: number;
  patchSize: number;
  layers: number;
  heads: number;
  hidden: number;
  mlpDim: number;
  inChannels?: number;
  classes?: number;
  /** Dropout after the position embedding, in attention and in the MLP (torchvision: 0). */
  dropout?: number;
}

/** Common sizes (Dosovitskiy et al. 2021 and DeiT's tiny / small), at 224 px with 16 px patches. */
export const VIT_PRESETS = {
  tiny: { imageSize: 224, patchSize: 16, layers: 12, heads: 3, hidden: 192, mlpDim: 768 },
  small: { imageSize: 224, patchSize: 16, layers: 12, heads: 6, hidden: 384, mlpDim: 1536 },
  base16: { imageSize: 224, patchSize: 16, layers: 12, heads: 12, hidden: 768, mlpDim: 3072 },
} satisfies Record<string, VitConfig>;

export interface VitOutputs {
  /** The class token after the final LayerNorm [batch, hidden]. */
  features: Value;
  /** Patch tokens after the final LayerNorm [batch, patches, hidden] (for local alignment). */
  patches: Value;
  logits?: Value;
}

/** Vision Transformer as torchvision builds it, with torchvision's parameter names. */
export function vit(b: ModelBuilder, x: Value, config: VitConfig): VitOutputs {
  const { g, o } = b;
  const grid = config.imageSize / config.patchSize;
  if (!Number.isInteger(grid))
    throw new Error(`image size ${config.imageSize} is not a multiple of the patch size ${config.patchSize}`);
  const tokens = grid * grid + 1;
  const d = config.hidden;
  let h = conv2d(b, 'conv_proj', x, config.inChannels ?? 3, d, config.patchSize, { stride: config.patchSize });
  h = o.transpose(o.reshape(h, [0, d, grid * grid]), [0, 2, 1]);
  const classToken = g.parameter('class_token', tensor('float32', [1, 1, d]));
  // Broadcast the class token over the batch: [batch] from x's shape, then [batch, 1, d].
  const batchSize = o.slice(o.shape(x), [0], [1]);
  const tokenShape = o.concat([batchSize, o.ints([1, d])], 0);
  h = o.concat([o.expand(classToken, tokenShape, [x.shape[0]!, 1, d]), h], 1);
  h = g.scope('encoder', () => {
    let y = dropout(b, o.add(h, g.parameter('pos_embedding', normal(b, [1, tokens, d], 0.02))), config.dropout ?? 0);
    g.scope('layers', () => {
      for (let i = 0; i < config.layers; i++) y = g.scope(`encoder_layer_${i}`, () => encoderBlock(b, y, config));
    });
    return layerNorm(b, 'ln', y, d, 1e-6);
  });
  const features = o.squeeze(o.slice(h, [0], [1], [1]), [1]);
  const patches = o.slice(h, [1], [tokens], [1]);
  const logits = config.classes ? g.scope('heads', () => linear(b, 'head', features, d, config.classes!)) : undefined;
  return { features, patches, logits };
}

function encoderBlock(b: ModelBuilder, x: Value, config: VitConfig): Value {
  const { g, o } = b;
  const d = config.hidden;
  const normed = layerNorm(b, 'ln_1', x, d, 1e-6);
  const attended = g.scope('self_attention', () => {
    // nn.MultiheadAttention packs the query, key and value projections into in_proj_*.
    // Xavier-uniform over the packed [3d, d] matrix, as nn.MultiheadAttention initialises it.
    const weight = g.parameter('in_proj_weight', uniform(b, [3 * d, d], Math.sqrt(6 / (d + 3 * d))));
    const inProj = o.add(
      o.matmul(normed, o.transpose(weight, [1, 0])),
      g.parameter('in_proj_bias', tensor('float32', [3 * d])),
    );
    const [q, k, v] = o.split(inProj, [d, d, d], 2) as [Value, Value, Value];
    return linear(b, 'out_proj', attention(b, q, k, v, config.heads, undefined, config.dropout ?? 0), d, d);
  });
  const y = o.add(x, dropout(b, attended, config.dropout ?? 0));
  const normed2 = layerNorm(b, 'ln_2', y, d, 1e-6);
  const rate = config.dropout ?? 0;
  const mlp = g.scope('mlp', () =>
    dropout(
      b,
      linear(b, '3', dropout(b, o.gelu(linear(b, '0', normed2, d, config.mlpDim)), rate), config.mlpDim, d),
      rate,
    ),
  );
  return o.add(y, mlp);
}
