import { PretrainingConfigError, type PretrainingConfig } from '@medsyn/config';
import type { EncoderSpec, ImageEncoderSpec } from '@medsyn/encoder-bundle';
import { VIT_PRESETS } from '@medsyn/model-zoo';

/** The image and text encoders a configuration describes (as @medsyn/encoder-bundle builds them). */
export function encoderSpecOf(config: PretrainingConfig): EncoderSpec {
  const { imageEncoder: img, textEncoder: txt } = config;
  let image: ImageEncoderSpec;
  if (img.architecture.startsWith('vit_')) {
    const preset = { vit_tiny: VIT_PRESETS.tiny, vit_small: VIT_PRESETS.small, vit_base_16: VIT_PRESETS.base16 }[
      img.architecture as 'vit_tiny'
    ]!;
    const hidden = img.width || preset.hidden;
    if (img.imageSize % preset.patchSize !== 0)
      throw new PretrainingConfigError(
        'image_encoder.image_size',
        `must be a multiple of the ViT patch size ${preset.patchSize}`,
      );
    if (hidden % preset.heads !== 0)
      throw new PretrainingConfigError('image_encoder.width', `must be divisible by the ViT's ${preset.heads} heads`);
    image = {
      architecture: 'vit',
      size: img.imageSize,
      vit: { patchSize: preset.patchSize, layers: preset.layers, heads: preset.heads, hidden, mlpDim: hidden * 4 },
    };
  } else {
    image = {
      architecture: img.architecture as ImageEncoderSpec['architecture'],
      size: img.imageSize,
      ...(img.width ? { width: img.width } : {}),
    };
  }
  return {
    image,
    text: {
      architecture: 'bert',
      bert: {
        vocabSize: 0, // set from the tokenizer's vocabulary when the job starts
        hidden: txt.hiddenSize,
        layers: txt.layers,
        heads: txt.heads,
        intermediate: txt.hiddenSize * 4,
        maxLength: txt.maxLength,
        maxPositions: Math.max(512, txt.maxLength),
      },
    },
    embeddingDim: config.embeddingSize,
    // ConVIRT projects through a one-hidden-layer MLP (Zhang et al. 2020, sec. 2.2); GLoRIA and MGCA linearly.
    projection: config.method === 'convirt' ? 'mlp' : 'linear',
  };
}
