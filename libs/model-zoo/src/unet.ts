import { tensor, type Value } from '@medsyn/onnx-graph';
import { attention, conv2d, layerNorm, linear, type ModelBuilder } from './builder';

/**
 * The conditional U-Net of latent diffusion (Rombach et al. 2022), as Hugging Face diffusers'
 * UNet2DConditionModel builds it and with its parameter names (`down_blocks.0.resnets.0.conv1`,
 * `...attentions.0.transformer_blocks.0.attn2.to_k`...), so Stable Diffusion / RoentGen weights map
 * by name. Sizes are configurable down to tiny CPU models.
 */
export interface UNetConfig {
  inChannels: number;
  outChannels: number;
  /** Channels of each resolution level, e.g. SD: [320, 640, 1280, 1280]. */
  blockChannels: number[];
  /** Which down blocks have cross-attention (CrossAttnDownBlock2D); the up path mirrors it. */
  crossAttention: boolean[];
  layersPerBlock: number;
  /** Width of the text encoder's hidden states (SD 1.x: 768, SD 2.x: 1024). */
  crossAttentionDim: number;
  /** Attention heads per level (diffusers derives them from attention_head_dim). */
  heads: number[];
  /** GroupNorm groups (diffusers: 32). */
  normGroups: number;
  /** SD 2.x projects into and out of attention with Linear layers, SD 1.x with 1x1 convolutions. */
  linearProjection: boolean;
}

export const UNET_PRESETS = {
  /** Stable Diffusion 2.1-base (RoentGen-v2's architecture). */
  sd21: {
    inChannels: 4,
    outChannels: 4,
    blockChannels: [320, 640, 1280, 1280],
    crossAttention: [true, true, true, false],
    layersPerBlock: 2,
    crossAttentionDim: 1024,
    heads: [5, 10, 20, 20],
    normGroups: 32,
    linearProjection: true,
  },
  /** A tiny configuration for CPU tests. */
  tiny: {
    inChannels: 4,
    outChannels: 4,
    blockChannels: [32, 64],
    crossAttention: [true, false],
    layersPerBlock: 1,
    crossAttentionDim: 32,
    heads: [2, 2],
    normGroups: 8,
    linearProjection: true,
  },
} satisfies Record<string, UNetConfig>;

/**
 * Noise prediction: sample [batch, inChannels, h, w] latents, timestep [batch] (float), and
 * encoderHiddenStates [batch, tokens, crossAttentionDim] -> [batch, outChannels, h, w].
 */
export function unet(
  b: ModelBuilder,
  sample: Value,
  timestep: Value,
  encoderHiddenStates: Value,
  config: UNetConfig,
): Value {
  const { g, o } = b;
  const c0 = config.blockChannels[0]!;
  const temb = g.scope('time_embedding', () =>
    linear(
      b,
      'linear_2',
      silu(b, linear(b, 'linear_1', timestepEmbedding(b, timestep, c0), c0, 4 * c0)),
      4 * c0,
      4 * c0,
    ),
  );
  const tembDim = 4 * c0;
  let h = conv2d(b, 'conv_in', sample, config.inChannels, c0, 3, { padding: 1 });
  const skips: { value: Value; channels: number }[] = [{ value: h, channels: c0 }];
  const levels = config.blockChannels.length;

  g.scope('down_blocks', () => {
    let channels = c0;
    config.blockChannels.forEach((out, i) => {
      g.scope(String(i), () => {
        for (let j = 0; j < config.layersPerBlock; j++) {
          h = g.scope('resnets', () =>
            g.scope(String(j), () => resnetBlock(b, h, channels, out, temb, tembDim, config.normGroups)),
          );
          channels = out;
          if (config.crossAttention[i])
            h = g.scope('attentions', () =>
              g.scope(String(j), () => transformer(b, h, out, encoderHiddenStates, config, config.heads[i]!)),
            );
          skips.push({ value: h, channels: out });
        }
        if (i < levels - 1) {
          h = g.scope('downsamplers', () =>
            g.scope('0', () => conv2d(b, 'conv', h, out, out, 3, { stride: 2, padding: 1 })),
          );
          skips.push({ value: h, channels: out });
        }
      });
    });
  });

  const deepest = config.blockChannels[levels - 1]!;
  g.scope('mid_block', () => {
    h = g.scope('resnets', () =>
      g.scope('0', () => resnetBlock(b, h, deepest, deepest, temb, tembDim, config.normGroups)),
    );
    h = g.scope('attentions', () =>
      g.scope('0', () => transformer(b, h, deepest, encoderHiddenStates, config, config.heads[levels - 1]!)),
    );
    h = g.scope('resnets', () =>
      g.scope('1', () => resnetBlock(b, h, deepest, deepest, temb, tembDim, config.normGroups)),
    );
  });

  g.scope('up_blocks', () => {
    const reversed = [...config.blockChannels].reverse();
    let previous = deepest;
    reversed.forEach((out, i) => {
      const level = levels - 1 - i;
      g.scope(String(i), () => {
        for (let j = 0; j <= config.layersPerBlock; j++) {
          const skip = skips.pop()!;
          const input = o.concat([h, skip.value], 1);
          h = g.scope('resnets', () =>
            g.scope(String(j), () =>
              resnetBlock(b, input, previous + skip.channels, out, temb, tembDim, config.normGroups),
            ),
          );
          previous = out;
          if (config.crossAttention[level])
            h = g.scope('attentions', () =>
              g.scope(String(j), () => transformer(b, h, out, encoderHiddenStates, config, config.heads[level]!)),
            );
        }
        if (i < levels - 1) {
          h = g.scope('upsamplers', () =>
            g.scope('0', () => conv2d(b, 'conv', o.resize(h, [1, 1, 2, 2], 'nearest'), out, out, 3, { padding: 1 })),
          );
        }
      });
    });
  });
  h = silu(b, groupNorm(b, 'conv_norm_out', h, c0, config.normGroups, 1e-5));
  return conv2d(b, 'conv_out', h, c0, config.outChannels, 3, { padding: 1 });
}

/** SiLU / swish: x * sigmoid(x). */
export function silu(b: ModelBuilder, x: Value): Value {
  return b.o.mul(x, b.o.sigmoid(x));
}

/** torch.nn.GroupNorm on [n, c, h, w]: statistics per group of c / groups channels. */
export function groupNorm(
  b: ModelBuilder,
  name: string,
  x: Value,
  channels: number,
  groups: number,
  eps: number,
): Value {
  const { g, o } = b;
  return g.scope(name, () => {
    const grouped = o.reshape(x, [0, groups, -1]);
    const mean = o.reduceMean(grouped, [2], true);
    const centered = o.sub(grouped, mean);
    const variance = o.reduceMean(o.mul(centered, centered), [2], true);
    const normalised = o.reshape(o.div(centered, o.sqrt(o.add(variance, o.scalar('float32', eps)))), [
      0,
      channels,
      x.shape[2] as number,
      x.shape[3] as number,
    ]);
    const weight = g.parameter('weight', tensor('float32', [channels], new Array(channels).fill(1)));
    const bias = g.parameter('bias', tensor('float32', [channels]));
    return o.add(o.mul(normalised, o.reshape(weight, [channels, 1, 1])), o.reshape(bias, [channels, 1, 1]));
  });
}

/**
 * Sinusoidal timestep embedding as diffusers' Timesteps(flip_sin_to_cos=True, freq_shift=0):
 * [cos(t w_k), sin(t w_k)] with w_k = exp(-ln(10000) k / half), k < half = dim / 2.
 */
function timestepEmbedding(b: ModelBuilder, timestep: Value, dim: number): Value {
  const { o } = b;
  const half = dim / 2;
  const frequencies = o.const(
    'float32',
    [1, half],
    Array.from({ length: half }, (_, k) => Math.exp((-Math.log(10000) * k) / half)),
  );
  const angles = o.mul(o.unsqueeze(o.cast(timestep, 'float32'), [1]), frequencies);
  return o.concat([b.g.op('Cos', [angles]), b.g.op('Sin', [angles])], 1);
}

/** diffusers' ResnetBlock2D: GroupNorm, SiLU, conv, + projected time embedding, GroupNorm, SiLU, conv, + shortcut. */
function resnetBlock(
  b: ModelBuilder,
  x: Value,
  inChannels: number,
  outChannels: number,
  temb: Value,
  tembDim: number,
  groups: number,
): Value {
  const { o } = b;
  let h = conv2d(b, 'conv1', silu(b, groupNorm(b, 'norm1', x, inChannels, groups, 1e-5)), inChannels, outChannels, 3, {
    padding: 1,
  });
  h = o.add(h, o.unsqueeze(linear(b, 'time_emb_proj', silu(b, temb), tembDim, outChannels), [2, 3]));
  h = conv2d(b, 'conv2', silu(b, groupNorm(b, 'norm2', h, outChannels, groups, 1e-5)), outChannels, outChannels, 3, {
    padding: 1,
  });
  const shortcut = inChannels === outChannels ? x : conv2d(b, 'conv_shortcut', x, inChannels, outChannels, 1);
  return o.add(shortcut, h);
}

/** diffusers' Transformer2DModel with one BasicTransformerBlock (self-attention, cross-attention, GEGLU feed-forward). */
function transformer(
  b: ModelBuilder,
  x: Value,
  channels: number,
  context: Value,
  config: UNetConfig,
  heads: number,
): Value {
  const { g, o } = b;
  const [, , height, width] = x.shape as [unknown, number, number, number];
  const normed = groupNorm(b, 'norm', x, channels, config.normGroups, 1e-6);
  const tokensOf = (v: Value) => o.transpose(o.reshape(v, [0, channels, height * width]), [0, 2, 1]);
  let h = config.linearProjection
    ? linear(b, 'proj_in', tokensOf(normed), channels, channels)
    : tokensOf(conv2d(b, 'proj_in', normed, channels, channels, 1));
  h = g.scope('transformer_blocks', () =>
    g.scope('0', () => {
      const attend = (name: string, query: Value, keys: Value, keyDim: number) =>
        g.scope(name, () => {
          const q = linear(b, 'to_q', query, channels, channels, { bias: false });
          const k = linear(b, 'to_k', keys, keyDim, channels, { bias: false });
          const v = linear(b, 'to_v', keys, keyDim, channels, { bias: false });
          return g.scope('to_out', () => linear(b, '0', attention(b, q, k, v, heads), channels, channels));
        });
      const n1 = layerNorm(b, 'norm1', h, channels);
      let y = o.add(attend('attn1', n1, n1, channels), h);
      y = o.add(attend('attn2', layerNorm(b, 'norm2', y, channels), context, config.crossAttentionDim), y);
      const n3 = layerNorm(b, 'norm3', y, channels);
      const ff = g.scope('ff', () =>
        g.scope('net', () => {
          const inner = 4 * channels;
          const projected = g.scope('0', () => linear(b, 'proj', n3, channels, 2 * inner));
          const [hidden, gate] = o.split(projected, [inner, inner], 2) as [Value, Value];
          return linear(b, '2', o.mul(hidden, o.gelu(gate)), inner, channels);
        }),
      );
      return o.add(ff, y);
    }),
  );
  const projected = config.linearProjection ? linear(b, 'proj_out', h, channels, channels) : h;
  const spatial = o.reshape(o.transpose(projected, [0, 2, 1]), [0, channels, height, width]);
  return o.add(config.linearProjection ? spatial : conv2d(b, 'proj_out', spatial, channels, channels, 1), x);
}
