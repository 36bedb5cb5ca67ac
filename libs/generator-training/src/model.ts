import { clipVocabularyFromMerges, clipMergeLines, CLIP_MAX_LENGTH } from '@medsyn/clip-tokenizer';
import { clipTextEncoder, SD21_SCHEDULER_CONFIG } from '@medsyn/diffusion';
import { ops, type GraphBuilder, type Value } from '@medsyn/onnx-graph';
import { modelBuilder, unet } from '@medsyn/model-zoo';
import { buildTrainingStep, type TrainingStepGraph } from '@medsyn/training';
import type { GeneratorConfig } from './config';

/** Vocabulary size of the truncated real-CLIP vocabulary the text encoder embeds. */
export function vocabularySize(config: GeneratorConfig): number {
  return Object.keys(clipVocabularyFromMerges(clipMergeLines(), config.text.mergeCount).vocab).length;
}

/** CLIP-style text encoder (transformers' CLIPTextModel names, under `text_model.`): ids -> hidden states. */
export function textEncoder(g: GraphBuilder, ids: Value, config: GeneratorConfig, training: boolean, seed = 0): Value {
  const b = modelBuilder(g, { seed, training });
  return clipTextEncoder(b, ids, vocabularySize(config), config.text.hidden, config.text.layers, config.text.heads);
}

/** Noise prediction of the conditional U-Net (diffusers' UNet2DConditionModel names). */
export function denoiser(
  g: GraphBuilder,
  sample: Value,
  timestep: Value,
  context: Value,
  config: GeneratorConfig,
  training: boolean,
  seed = 1,
): Value {
  return unet(modelBuilder(g, { seed, training }), sample, timestep, context, config.unet);
}

/**
 * One training step of the text encoder and U-Net together: the DDPM epsilon objective
 * (Ho et al. 2020, eq. 14), mean squared error between the added and the predicted noise.
 * The batch (noisy images, timesteps, ids, noise) is drawn outside the graph by the trainer.
 */
export function generatorTrainingStep(
  config: GeneratorConfig,
  batchSize: number,
  options: { weightDecay?: number; maxGradNorm?: number } = {},
): TrainingStepGraph {
  const s = config.imageSize;
  return buildTrainingStep({
    optimizer: { kind: 'adamw', weightDecay: options.weightDecay ?? 0.01 },
    maxGradNorm: options.maxGradNorm ?? 1,
    build: (g) => {
      const o = ops(g);
      const noisy = g.input('noisy', 'float32', [batchSize, 1, s, s]);
      const timestep = g.input('timestep', 'float32', [batchSize]);
      const ids = g.input('input_ids', 'int32', [batchSize, CLIP_MAX_LENGTH]);
      const noise = g.input('noise', 'float32', [batchSize, 1, s, s]);
      const predicted = denoiser(g, noisy, timestep, textEncoder(g, ids, config, true), config, true);
      const error = o.sub(predicted, noise);
      return { loss: o.reduceMean(o.mul(error, error), [0, 1, 2, 3], false) };
    },
  });
}

/**
 * alphā_t of the training noise schedule: Stable Diffusion 2.1's scaled-linear betas, the same
 * schedule the exported scheduler_config.json gives the sampler.
 */
export function trainingAlphasCumprod(): Float64Array {
  const { beta_start: start, beta_end: end, num_train_timesteps: steps } = SD21_SCHEDULER_CONFIG;
  const out = new Float64Array(steps);
  let product = 1;
  for (let i = 0; i < steps; i++) {
    const root = Math.sqrt(start) + ((Math.sqrt(end) - Math.sqrt(start)) * i) / (steps - 1);
    product *= 1 - root * root;
    out[i] = product;
  }
  return out;
}
