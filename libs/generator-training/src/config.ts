import type { UNetConfig } from '@medsyn/model-zoo';

/**
 * The default generator's shape. It is a pixel-space diffusion model: the "latents" are the
 * grayscale image itself at `imageSize`, and the export's vae_decoder is a fixed, parameter-free
 * upsampler by `outputScale` (so it fits the Stable Diffusion ONNX layout and loader unchanged).
 * A learned autoencoder would need far more data and compute than a CPU-trained default has.
 */
export interface GeneratorConfig {
  /** Side of the square images the U-Net denoises. */
  imageSize: number;
  /** Bilinear upsampling of the decoder: 1, 2 or 4 (output side = imageSize x outputScale). */
  outputScale: 1 | 2 | 4;
  unet: UNetConfig;
  text: {
    /** Real CLIP merges kept (the vocabulary is CLIP's first tokens: same ids as CLIP for them). */
    mergeCount: number;
    hidden: number;
    layers: number;
    heads: number;
  };
}

export const GENERATOR_PRESETS = {
  /** The bundled default: 64 px denoised, 128 px out, 7.8M parameters (16 MB with float16-stored weights). */
  default: {
    imageSize: 64,
    outputScale: 2,
    unet: {
      inChannels: 1,
      outChannels: 1,
      blockChannels: [32, 64, 128, 128],
      crossAttention: [false, false, true, true],
      layersPerBlock: 1,
      crossAttentionDim: 128,
      heads: [2, 4, 4, 4],
      normGroups: 8,
      linearProjection: true,
    },
    text: { mergeCount: 6000, hidden: 128, layers: 2, heads: 4 },
  },
  /** For tests: a few seconds per hundred steps. */
  tiny: {
    imageSize: 16,
    outputScale: 2,
    unet: {
      inChannels: 1,
      outChannels: 1,
      blockChannels: [16, 32],
      crossAttention: [false, true],
      layersPerBlock: 1,
      crossAttentionDim: 32,
      heads: [2, 2],
      normGroups: 4,
      linearProjection: true,
    },
    text: { mergeCount: 500, hidden: 32, layers: 1, heads: 2 },
  },
} satisfies Record<string, GeneratorConfig>;

export class GeneratorConfigError extends Error {
  override name = 'GeneratorConfigError';
}

export function validateGeneratorConfig(config: GeneratorConfig): void {
  const levels = config.unet.blockChannels.length;
  if (config.imageSize % 2 ** (levels - 1) !== 0)
    throw new GeneratorConfigError(
      `imageSize ${config.imageSize} must be divisible by 2^${levels - 1} (the U-Net's downsamplings)`,
    );
  if (config.unet.crossAttentionDim !== config.text.hidden)
    throw new GeneratorConfigError(
      `unet.crossAttentionDim (${config.unet.crossAttentionDim}) must equal text.hidden (${config.text.hidden})`,
    );
  if (config.unet.inChannels !== 1 || config.unet.outChannels !== 1)
    throw new GeneratorConfigError('unet.inChannels and unet.outChannels must be 1 (grayscale pixel space)');
  if (![1, 2, 4].includes(config.outputScale))
    throw new GeneratorConfigError(`outputScale must be 1, 2 or 4, got ${config.outputScale}`);
}
