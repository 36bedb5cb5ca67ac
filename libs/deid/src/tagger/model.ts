import { ops, tensor, type GraphBuilder, type Value } from '@medsyn/onnx-graph';
import { FEATURE_SLOTS } from './features';
import { seededRandom } from '@medsyn/random';

/** Classes the tagger predicts; index 0 is "not PHI". */
export const TAGGER_CLASSES = ['O', 'NAME', 'LOCATION', 'DATE', 'CONTACT', 'ID'] as const;
export type TaggerClass = (typeof TAGGER_CLASSES)[number];

export interface TaggerConfig {
  /** Rows of the hashed embedding table (all feature slots share it). */
  buckets: number;
  /** Embedding width. */
  dim: number;
  /** Width of the convolution layers. */
  channels: number;
  /** Kernel size and dilation of each convolution over the token sequence. */
  layers: { kernel: number; dilation: number }[];
}

export const DEFAULT_TAGGER_CONFIG: TaggerConfig = {
  buckets: 1 << 15,
  dim: 48,
  channels: 64,
  layers: [
    { kernel: 5, dilation: 1 },
    { kernel: 3, dilation: 2 },
    { kernel: 3, dilation: 4 },
    { kernel: 3, dilation: 8 },
  ],
};

/**
 * How many tokens on each side a token's output depends on (the convolutions' reach added up: 16
 * for the default). A token at least this far from a window's cut edge gets the output the uncut
 * text would give it.
 */
export function receptiveRadius(config: TaggerConfig): number {
  return config.layers.reduce((sum, { kernel, dilation }) => sum + (dilation * (kernel - 1)) / 2, 0);
}

/** Deterministic uniform(-limit, limit) initial values, so a seed fixes the whole run. */
function uniform(dims: number[], limit: number, seed: number) {
  const random = seededRandom(seed);
  const values = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (random() - 0.5) * 2 * limit);
  return tensor('float32', dims, values);
}

/**
 * Hashed feature embeddings summed per token, then 1-D convolutions over the token sequence
 * (as 2-D convolutions of height 1, the layout onnxruntime's Conv and our Conv gradient take)
 * with residual connections, then a 1x1 convolution to class logits.
 * ids: int32 [batch, tokens, FEATURE_SLOTS]; returns log-probabilities [batch, tokens, classes].
 */
export function buildTagger(g: GraphBuilder, ids: Value, config: TaggerConfig, seed = 1): Value {
  const o = ops(g);
  const { buckets, dim, channels } = config;
  const table = g.parameter('embedding.weight', uniform([buckets, dim], 0.1, seed));
  const embedded = o.reduceSum(o.gather(table, o.cast(ids, 'int64')), [2], false); // [B, T, D]
  // Padding (every feature id 0) must read as the convolutions' own zero padding, so that a text's spans do not
  // depend on what it is batched with: padded positions are zeroed after the embedding and after every layer.
  const real = o.unsqueeze(
    o.cast(o.greater(o.reduceSum(o.cast(ids, 'float32'), [2], false), o.scalar('float32', 0)), 'float32'),
    [1, 2],
  );
  let h = o.mul(o.unsqueeze(o.transpose(embedded, [0, 2, 1]), [2]), real); // [B, D, 1, T]
  let width = dim;
  config.layers.forEach(({ kernel, dilation }, i) => {
    const fanIn = width * kernel;
    const w = g.parameter(
      `conv${i}.weight`,
      uniform([channels, width, 1, kernel], Math.sqrt(6 / fanIn), seed + 101 * (i + 1)),
    );
    const b = g.parameter(`conv${i}.bias`, tensor('float32', [channels]));
    const reach = (dilation * (kernel - 1)) / 2;
    const y = o.relu(o.conv(h, w, b, { pads: [0, reach, 0, reach], dilations: [1, dilation] }));
    h = o.mul(width === channels ? o.add(h, y) : y, real);
    width = channels;
  });
  const classes = TAGGER_CLASSES.length;
  const w = g.parameter('head.weight', uniform([classes, channels, 1, 1], Math.sqrt(3 / channels), seed + 7));
  const logits = o.conv(h, w, g.parameter('head.bias', tensor('float32', [classes])));
  return o.logSoftmax(o.transpose(o.squeeze(logits, [2]), [0, 2, 1]), -1); // [B, T, K]
}

export const idsInputShape = ['batch', 'tokens', FEATURE_SLOTS] as const;
