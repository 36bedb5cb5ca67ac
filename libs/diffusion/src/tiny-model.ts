import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeClipTokenizerFiles, CLIP_MAX_LENGTH } from '@medsyn/clip-tokenizer';
import { GraphBuilder, encodeModel, ops, type DType, type Value } from '@medsyn/onnx-graph';
import {
  attention,
  conv2d,
  embedding,
  groupNorm,
  layerNorm,
  linear,
  modelBuilder,
  normal,
  silu,
  unet,
  UNET_PRESETS,
  type ModelBuilder,
  type UNetConfig,
} from '@medsyn/model-zoo';

/**
 * A small Stable Diffusion model with random weights in exactly the ONNX export layout
 * (diffusers' convert_stable_diffusion_checkpoint_to_onnx.py / optimum-cli): the same file names,
 * input and output names, dtypes and shape rules as a real export, built with our graph builder
 * and model zoo under diffusers / transformers parameter names. For tests and benchmarks.
 */
export interface TinyModelOptions {
  /** float16 exports take and return half-precision tensors (the models compute in float32 inside). */
  dtype?: 'float32' | 'float16';
  /** Token ids: int32 (diffusers' converter) or int64 (optimum). */
  idsDtype?: 'int32' | 'int64';
  /** Timestep input: float [batch] (diffusers' converter) or int64 [1] (optimum). */
  timestep?: 'float-batch' | 'int64-one';
  /** UNet shape; defaults to the zoo's tiny preset. */
  unet?: UNetConfig;
  /** Latent height and width (the image is 8x larger). */
  latentSize?: number;
  /** CLIP merges kept in the vocabulary (real CLIP ids; 48,894 is the full vocabulary). */
  mergeCount?: number;
  textLayers?: number;
  vaeChannels?: number[];
  seed?: number;
  /** prediction_type written to scheduler_config.json. */
  predictionType?: 'epsilon' | 'v_prediction';
}

/** model_index.json of diffusers' OnnxStableDiffusionPipeline (text-to-image only: no VAE encoder, no safety checker). */
export const SD_ONNX_MODEL_INDEX = {
  _class_name: 'OnnxStableDiffusionPipeline',
  _diffusers_version: '0.27.0',
  feature_extractor: [null, null],
  requires_safety_checker: false,
  safety_checker: [null, null],
  scheduler: ['diffusers', 'PNDMScheduler'],
  text_encoder: ['diffusers', 'OnnxRuntimeModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  unet: ['diffusers', 'OnnxRuntimeModel'],
  vae_decoder: ['diffusers', 'OnnxRuntimeModel'],
  vae_encoder: [null, null],
};

/** Stable Diffusion 2.1-base's scheduler_config.json (RoentGen-v2 keeps it). */
export const SD21_SCHEDULER_CONFIG = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.8.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
};

export const writeJson = (file: string, value: unknown) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2));
};

function writeModel(file: string, g: GraphBuilder): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, encodeModel(g.toModelProto({ producer: 'medsyn tiny-model' })));
}

/** A float input in the export's dtype, as float32 inside the graph. */
function floatInput(g: GraphBuilder, name: string, dtype: DType, shape: (number | string)[]): Value {
  const v = g.input(name, dtype, shape);
  return ops(g).cast(v, 'float32');
}

function floatOutput(b: ModelBuilder, v: Value, dtype: DType, name: string): void {
  b.g.output(dtype === 'float32' ? v : b.o.cast(v, dtype), name);
}

/** transformers' CLIPTextModel (pre-LayerNorm, causal self-attention, GELU MLP) -> last_hidden_state. */
export function clipTextEncoder(
  b: ModelBuilder,
  ids: Value,
  vocabSize: number,
  hidden: number,
  layers: number,
  heads: number,
): Value {
  const { g, o } = b;
  return g.scope('text_model', () => {
    let h = g.scope('embeddings', () => {
      const tokens = embedding(b, 'token_embedding', ids, vocabSize, hidden, 0.02);
      const positions = g.scope('position_embedding', () =>
        g.parameter('weight', normal(b, [CLIP_MAX_LENGTH, hidden], 0.01)),
      );
      return o.add(tokens, positions);
    });
    // CLIP's text transformer is causal: token i attends to tokens <= i.
    const mask = Array.from({ length: CLIP_MAX_LENGTH * CLIP_MAX_LENGTH }, (_, k) =>
      k % CLIP_MAX_LENGTH > Math.floor(k / CLIP_MAX_LENGTH) ? -1e9 : 0,
    );
    const causal = o.const('float32', [1, 1, CLIP_MAX_LENGTH, CLIP_MAX_LENGTH], mask);
    g.scope('encoder', () =>
      g.scope('layers', () => {
        for (let i = 0; i < layers; i++) {
          g.scope(String(i), () => {
            const n1 = layerNorm(b, 'layer_norm1', h, hidden);
            const attended = g.scope('self_attn', () => {
              const q = linear(b, 'q_proj', n1, hidden, hidden);
              const k = linear(b, 'k_proj', n1, hidden, hidden);
              const v = linear(b, 'v_proj', n1, hidden, hidden);
              return linear(b, 'out_proj', attention(b, q, k, v, heads, causal), hidden, hidden);
            });
            h = o.add(h, attended);
            const n2 = layerNorm(b, 'layer_norm2', h, hidden);
            const mlp = g.scope('mlp', () =>
              linear(b, 'fc2', o.gelu(linear(b, 'fc1', n2, hidden, 4 * hidden)), 4 * hidden, hidden),
            );
            h = o.add(h, mlp);
          });
        }
      }),
    );
    return layerNorm(b, 'final_layer_norm', h, hidden);
  });
}

/** diffusers' ResnetBlock2D without a time embedding (as in the VAE). */
function vaeResnet(b: ModelBuilder, x: Value, inChannels: number, outChannels: number, groups: number): Value {
  const h1 = conv2d(
    b,
    'conv1',
    silu(b, groupNorm(b, 'norm1', x, inChannels, groups, 1e-6)),
    inChannels,
    outChannels,
    3,
    { padding: 1 },
  );
  const h2 = conv2d(
    b,
    'conv2',
    silu(b, groupNorm(b, 'norm2', h1, outChannels, groups, 1e-6)),
    outChannels,
    outChannels,
    3,
    { padding: 1 },
  );
  const shortcut = inChannels === outChannels ? x : conv2d(b, 'conv_shortcut', x, inChannels, outChannels, 1);
  return b.o.add(shortcut, h2);
}

/** The decoder half of diffusers' AutoencoderKL. */
export interface VaeDecoderConfig {
  latentChannels: number;
  /** block_out_channels, encoder order (SD: 128, 256, 512, 512); the decoder runs them reversed. */
  blockChannels: number[];
  groups: number;
  /** ResnetBlock2Ds per up block: layers_per_block + 1 in diffusers (SD: 3). */
  resnetsPerUpBlock: number;
  /** The mid block as in diffusers (resnet, single-head self-attention, resnet); false: one resnet. */
  midBlockAttention: boolean;
}

/** The tiny model's VAE: one resnet per level and no mid-block attention. */
const TINY_VAE = { groups: 4, resnetsPerUpBlock: 1, midBlockAttention: false };

/** diffusers' Attention as the VAE's mid block uses it: GroupNorm, one head over all channels, residual. */
function vaeAttention(b: ModelBuilder, x: Value, channels: number, groups: number): Value {
  const { o } = b;
  const [, , height, width] = x.shape as [unknown, number, number, number];
  const tokens = o.transpose(
    o.reshape(groupNorm(b, 'group_norm', x, channels, groups, 1e-6), [0, channels, height * width]),
    [0, 2, 1],
  );
  const q = linear(b, 'to_q', tokens, channels, channels);
  const k = linear(b, 'to_k', tokens, channels, channels);
  const v = linear(b, 'to_v', tokens, channels, channels);
  const out = b.g.scope('to_out', () => linear(b, '0', attention(b, q, k, v, 1), channels, channels));
  return o.add(o.reshape(o.transpose(out, [0, 2, 1]), [0, channels, height, width]), x);
}

/** diffusers' AutoencoderKL decode path (post_quant_conv + Decoder): latents -> RGB. */
export function vaeDecoder(b: ModelBuilder, z: Value, config: VaeDecoderConfig): Value {
  const { g, o } = b;
  const { latentChannels, groups } = config;
  let h = conv2d(b, 'post_quant_conv', z, latentChannels, latentChannels, 1);
  const reversed = [...config.blockChannels].reverse();
  const at = <T>(scope: string, index: number, build: () => T) => g.scope(scope, () => g.scope(String(index), build));
  return g.scope('decoder', () => {
    h = conv2d(b, 'conv_in', h, latentChannels, reversed[0]!, 3, { padding: 1 });
    g.scope('mid_block', () => {
      h = at('resnets', 0, () => vaeResnet(b, h, reversed[0]!, reversed[0]!, groups));
      if (!config.midBlockAttention) return;
      h = at('attentions', 0, () => vaeAttention(b, h, reversed[0]!, groups));
      h = at('resnets', 1, () => vaeResnet(b, h, reversed[0]!, reversed[0]!, groups));
    });
    let channels = reversed[0]!;
    g.scope('up_blocks', () =>
      reversed.forEach((out, i) =>
        g.scope(String(i), () => {
          for (let j = 0; j < config.resnetsPerUpBlock; j++) {
            h = at('resnets', j, () => vaeResnet(b, h, channels, out, groups));
            channels = out;
          }
          if (i < reversed.length - 1)
            h = at('upsamplers', 0, () =>
              conv2d(b, 'conv', o.resize(h, [1, 1, 2, 2], 'nearest'), out, out, 3, { padding: 1 }),
            );
        }),
      ),
    );
    h = silu(b, groupNorm(b, 'conv_norm_out', h, channels, groups, 1e-6));
    return conv2d(b, 'conv_out', h, channels, 3, 3, { padding: 1 });
  });
}

/** Writes the model to `dir` (created); returns the directory. */
export function buildTinyModel(dir: string, options: TinyModelOptions = {}): string {
  const dtype: DType = options.dtype ?? 'float32';
  const unetConfig = options.unet ?? UNET_PRESETS.tiny;
  const latent = options.latentSize ?? 8;
  const hidden = unetConfig.crossAttentionDim;
  const vaeChannels = options.vaeChannels ?? [8, 16, 16, 16];
  const seed = options.seed ?? 1;
  fs.mkdirSync(dir, { recursive: true });

  const vocabulary = writeClipTokenizerFiles(path.join(dir, 'tokenizer'), {
    mergeCount: options.mergeCount ?? 2000,
    padToken: '!',
  });
  const vocabSize = Object.keys(vocabulary.vocab).length;

  const text = new GraphBuilder('text_encoder');
  const tb = modelBuilder(text, { seed });
  const ids = text.input('input_ids', options.idsDtype ?? 'int32', ['batch', CLIP_MAX_LENGTH]);
  floatOutput(tb, clipTextEncoder(tb, ids, vocabSize, hidden, options.textLayers ?? 2, 2), dtype, 'last_hidden_state');
  writeModel(path.join(dir, 'text_encoder', 'model.onnx'), text);
  writeJson(path.join(dir, 'text_encoder', 'config.json'), {
    architectures: ['CLIPTextModel'],
    hidden_size: hidden,
    num_hidden_layers: options.textLayers ?? 2,
    vocab_size: vocabSize,
    max_position_embeddings: CLIP_MAX_LENGTH,
  });

  const u = new GraphBuilder('unet');
  const ub = modelBuilder(u, { seed: seed + 1 });
  const sample = floatInput(u, 'sample', dtype, ['batch', unetConfig.inChannels, latent, latent]);
  const timestep =
    options.timestep === 'int64-one' ? u.input('timestep', 'int64', [1]) : floatInput(u, 'timestep', dtype, ['batch']);
  const context = floatInput(u, 'encoder_hidden_states', dtype, ['batch', 'sequence', hidden]);
  floatOutput(ub, unet(ub, sample, timestep, context, unetConfig), dtype, 'out_sample');
  writeModel(path.join(dir, 'unet', 'model.onnx'), u);
  writeJson(path.join(dir, 'unet', 'config.json'), {
    _class_name: 'UNet2DConditionModel',
    sample_size: latent,
    in_channels: unetConfig.inChannels,
    out_channels: unetConfig.outChannels,
    block_out_channels: unetConfig.blockChannels,
    cross_attention_dim: hidden,
  });

  const v = new GraphBuilder('vae_decoder');
  const vb = modelBuilder(v, { seed: seed + 2 });
  const z = floatInput(v, 'latent_sample', dtype, ['batch', unetConfig.outChannels, latent, latent]);
  floatOutput(
    vb,
    vaeDecoder(vb, z, { ...TINY_VAE, latentChannels: unetConfig.outChannels, blockChannels: vaeChannels }),
    dtype,
    'sample',
  );
  writeModel(path.join(dir, 'vae_decoder', 'model.onnx'), v);
  writeJson(path.join(dir, 'vae_decoder', 'config.json'), {
    _class_name: 'AutoencoderKL',
    block_out_channels: vaeChannels,
    latent_channels: unetConfig.outChannels,
    scaling_factor: 0.18215,
  });

  writeJson(path.join(dir, 'scheduler', 'scheduler_config.json'), {
    ...SD21_SCHEDULER_CONFIG,
    prediction_type: options.predictionType ?? 'epsilon',
  });
  writeJson(path.join(dir, 'model_index.json'), SD_ONNX_MODEL_INDEX);
  return dir;
}
