import * as path from 'node:path';
import { writeClipTokenizerFiles, CLIP_MAX_LENGTH } from '@medsyn/clip-tokenizer';
import { GraphBuilder, convertToFloat16, numel, saveModel } from '@medsyn/onnx-graph';
import { modelBuilder, unet, UNET_PRESETS, type ModelBuilder, type UNetConfig } from '@medsyn/model-zoo';
import {
  clipTextEncoder,
  SD_ONNX_MODEL_INDEX,
  SD21_SCHEDULER_CONFIG,
  vaeDecoder,
  writeJson,
  type VaeDecoderConfig,
} from './tiny-model';

/** The shapes of a Stable Diffusion model: text encoder, UNet, VAE decoder and latent size. */
export interface SdArchitecture {
  text: {
    hidden: number;
    layers: number;
    heads: number;
    /** CLIP BPE merges kept (48,894: the full 49,408-token vocabulary). */ mergeCount: number;
  };
  unet: UNetConfig;
  vae: Omit<VaeDecoderConfig, 'latentChannels'>;
  /** Latent height and width (the image is 8x larger with four VAE levels). */
  latentSize: number;
}

/**
 * RoentGen-v2 = Stable Diffusion 2.1-base (stabilityai/stable-diffusion-2-1-base config files):
 * OpenCLIP ViT-H/14's text tower as SD 2 uses it (hidden 1024, 23 of its 24 layers, 16 heads, MLP
 * 4096, GELU, 77 tokens), the 865M-parameter UNet and the full KL-f8 VAE decoder, 64x64 latents
 * for 512 px.
 */
export const ROENTGEN_V2_ARCHITECTURE: SdArchitecture = {
  text: { hidden: 1024, layers: 23, heads: 16, mergeCount: 48894 },
  unet: UNET_PRESETS.sd21,
  vae: { blockChannels: [128, 256, 512, 512], groups: 32, resnetsPerUpBlock: 3, midBlockAttention: true },
  latentSize: 64,
};

/** The same topology at toy width (every component, block and attention present), for tests. */
export const TINY_SD2_ARCHITECTURE: SdArchitecture = {
  text: { hidden: 32, layers: 2, heads: 2, mergeCount: 2000 },
  unet: {
    ...UNET_PRESETS.sd21,
    blockChannels: [32, 32, 64, 64],
    heads: [1, 1, 2, 2],
    crossAttentionDim: 32,
    layersPerBlock: 1,
    normGroups: 8,
  },
  vae: { blockChannels: [8, 16, 16, 16], groups: 4, resnetsPerUpBlock: 2, midBlockAttention: true },
  latentSize: 8,
};

export interface SdModelTarget {
  dir: string;
  /**
   * float32, or float16 as optimum-cli --fp16 exports: float16 weights, inputs and outputs, the
   * graph computing in float16 except the sinusoidal timestep embedding (float32, as in
   * diffusers), ids and timestep int64.
   */
  dtype: 'float32' | 'float16';
}

export interface SdModelBuildOptions {
  architecture?: SdArchitecture;
  seed?: number;
  /** Initialisers of at least this many bytes go to `model.onnx_data` (default 1024, as onnx). */
  externalDataThreshold?: number;
}

/** Parameters (weights, not constants) of each component. */
export interface SdModelSummary {
  parameters: { text_encoder: number; unet: number; vae_decoder: number };
}

/**
 * Writes a random-weight model of the given architecture (default: RoentGen-v2's) in the
 * optimum ONNX layout, every model's weights in `model.onnx_data` next to it, to each target
 * (one weight generation serves a float32 and a float16 copy: the same weights, converted).
 * Weights follow the zoo's PyTorch-default initialisation (uniform, 1/sqrt(fan-in)) and std 0.02
 * embeddings, so activations stay finite through 865M parameters. Components are built and
 * written one at a time to bound memory (peak RSS 5 GiB for both copies: the float32 UNet and its
 * float16 conversion).
 */
export function buildSdModels(targets: SdModelTarget[], options: SdModelBuildOptions = {}): SdModelSummary {
  const arch = options.architecture ?? ROENTGEN_V2_ARCHITECTURE;
  const seed = options.seed ?? 1;
  const { hidden } = arch.text;
  const latent = arch.latentSize;
  const channels = arch.unet.inChannels;
  let vocabSize = 0;
  for (const t of targets) {
    const vocabulary = writeClipTokenizerFiles(path.join(t.dir, 'tokenizer'), {
      mergeCount: arch.text.mergeCount,
      padToken: '!',
    });
    vocabSize = Object.keys(vocabulary.vocab).length;
  }
  const write = (component: string, componentSeed: number, build: (b: ModelBuilder) => void): number => {
    const g = new GraphBuilder(component);
    const b = modelBuilder(g, { seed: componentSeed });
    build(b);
    const proto = g.toModelProto({ producer: 'medsyn roentgen-size-model', shareTensorData: true });
    for (const t of targets) {
      saveModel(path.join(t.dir, component, 'model.onnx'), t.dtype === 'float16' ? convertToFloat16(proto) : proto, {
        location: 'model.onnx_data',
        threshold: options.externalDataThreshold,
      });
    }
    return [...g.parameters.values()].reduce((sum, p) => sum + numel(p.initial.dims), 0);
  };

  const parameters = {
    text_encoder: write('text_encoder', seed, (b) => {
      const ids = b.g.input('input_ids', 'int64', ['batch', CLIP_MAX_LENGTH]);
      b.g.output(clipTextEncoder(b, ids, vocabSize, hidden, arch.text.layers, arch.text.heads), 'last_hidden_state');
    }),
    unet: write('unet', seed + 1, (b) => {
      const sample = b.g.input('sample', 'float32', ['batch', channels, latent, latent]);
      const timestep = b.g.input('timestep', 'int64', [1]);
      const context = b.g.input('encoder_hidden_states', 'float32', ['batch', 'sequence', hidden]);
      b.g.output(unet(b, sample, timestep, context, arch.unet), 'out_sample');
    }),
    vae_decoder: write('vae_decoder', seed + 2, (b) => {
      const z = b.g.input('latent_sample', 'float32', ['batch', arch.unet.outChannels, latent, latent]);
      b.g.output(vaeDecoder(b, z, { ...arch.vae, latentChannels: arch.unet.outChannels }), 'sample');
    }),
  };

  for (const t of targets) {
    writeJson(path.join(t.dir, 'text_encoder', 'config.json'), {
      architectures: ['CLIPTextModel'],
      hidden_act: 'gelu',
      hidden_size: hidden,
      intermediate_size: 4 * hidden,
      num_attention_heads: arch.text.heads,
      num_hidden_layers: arch.text.layers,
      vocab_size: vocabSize,
      max_position_embeddings: CLIP_MAX_LENGTH,
    });
    writeJson(path.join(t.dir, 'unet', 'config.json'), {
      _class_name: 'UNet2DConditionModel',
      sample_size: latent,
      in_channels: channels,
      out_channels: arch.unet.outChannels,
      block_out_channels: arch.unet.blockChannels,
      layers_per_block: arch.unet.layersPerBlock,
      attention_head_dim: arch.unet.heads,
      cross_attention_dim: hidden,
      use_linear_projection: arch.unet.linearProjection,
    });
    writeJson(path.join(t.dir, 'vae_decoder', 'config.json'), {
      _class_name: 'AutoencoderKL',
      block_out_channels: arch.vae.blockChannels,
      latent_channels: arch.unet.outChannels,
      layers_per_block: arch.vae.resnetsPerUpBlock - 1,
      scaling_factor: 0.18215,
    });
    writeJson(path.join(t.dir, 'scheduler', 'scheduler_config.json'), SD21_SCHEDULER_CONFIG);
    writeJson(path.join(t.dir, 'model_index.json'), {
      ...SD_ONNX_MODEL_INDEX,
      medsyn: { architecture: 'roentgen-v2-size (random weights)' },
    });
  }
  return { parameters };
}

/** One model: `buildSdModels` with a single target. */
export function buildRoentgenSizeModel(
  dir: string,
  options: SdModelBuildOptions & { dtype?: 'float32' | 'float16' } = {},
): SdModelSummary {
  return buildSdModels([{ dir, dtype: options.dtype ?? 'float32' }], options);
}
