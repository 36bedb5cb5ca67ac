import { ClipTokenizer, CLIP_MAX_LENGTH } from '@medsyn/clip-tokenizer';
import { SeededNoise } from '@medsyn/diffusion';
import type { Tensor } from '@medsyn/onnx-graph';
import { Trainer, type TrainerState } from '@medsyn/training';
import * as ort from 'onnxruntime-node';
import { validateGeneratorConfig, type GeneratorConfig } from './config';
import type { GeneratorExample } from './data';
import { generatorTrainingStep, trainingAlphasCumprod } from './model';

export interface GeneratorTrainingOptions {
  config: GeneratorConfig;
  examples: GeneratorExample[];
  /** The tokenizer the export ships (so training and sampling tokenise alike). */
  tokenizer: ClipTokenizer;
  steps: number;
  batchSize: number;
  learningRate: number;
  /** Linear warm-up steps, then cosine decay to 10 % of the rate. */
  warmupSteps?: number;
  /** Share of prompts replaced by '' so the model also learns p(x) for classifier-free guidance. */
  unconditionalRate?: number;
  /** Largest random shift in pixels (a light augmentation; no flips: laterality matters in a radiograph). */
  maxShift?: number;
  seed?: number;
  /** Continue from this state (its step count says where). */
  resume?: TrainerState;
  /** Called after every step; return a promise to checkpoint before going on. */
  onStep?: (info: { step: number; loss: number; learningRate: number; trainer: Trainer }) => void | Promise<void>;
}

export interface GeneratorTrainingResult {
  parameters: Map<string, Tensor>;
  losses: number[];
}

export function learningRateAt(
  step: number,
  options: Pick<GeneratorTrainingOptions, 'steps' | 'learningRate' | 'warmupSteps'>,
): number {
  const warmup = options.warmupSteps ?? 0;
  if (step < warmup) return (options.learningRate * (step + 1)) / warmup;
  const progress = (step - warmup) / Math.max(1, options.steps - warmup);
  return options.learningRate * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

/**
 * Trains text encoder + U-Net on image/prompt pairs. Every random draw of step s (examples,
 * timesteps, noise, shifts, dropped prompts) comes from a generator seeded by (seed, s), so a run
 * resumed from a checkpoint continues exactly as an uninterrupted one.
 */
export async function trainGenerator(options: GeneratorTrainingOptions): Promise<GeneratorTrainingResult> {
  const { config, examples, batchSize } = options;
  validateGeneratorConfig(config);
  if (examples.length === 0) throw new Error('no training examples');
  const trainer = await Trainer.create(generatorTrainingStep(config, batchSize), { seed: options.seed ?? 0 });
  if (options.resume) trainer.load(options.resume);
  const alphas = trainingAlphasCumprod();
  const size = config.imageSize;
  const plane = size * size;
  const encoded = new Map<string, number[]>();
  const idsOf = (prompt: string) => {
    let ids = encoded.get(prompt);
    if (!ids) encoded.set(prompt, (ids = options.tokenizer.encode(prompt).ids));
    return ids;
  };
  const losses: number[] = [];
  try {
    for (let step = trainer.step; step < options.steps; step++) {
      const random = new SeededNoise((BigInt(options.seed ?? 0) << 32n) | BigInt(step));
      const noisy = new Float32Array(batchSize * plane);
      const noise = random.normal(batchSize * plane);
      const timesteps = new Float32Array(batchSize);
      const ids = new Int32Array(batchSize * CLIP_MAX_LENGTH);
      for (let i = 0; i < batchSize; i++) {
        const example = examples[random.nextUint32() % examples.length]!;
        const t = random.nextUint32() % alphas.length;
        timesteps[i] = t;
        const [a, s] = [Math.sqrt(alphas[t]!), Math.sqrt(1 - alphas[t]!)];
        const shift = options.maxShift ?? 0;
        const dx = shift ? (random.nextUint32() % (2 * shift + 1)) - shift : 0;
        const dy = shift ? (random.nextUint32() % (2 * shift + 1)) - shift : 0;
        for (let y = 0; y < size; y++) {
          const sy = Math.min(size - 1, Math.max(0, y + dy));
          for (let x = 0; x < size; x++) {
            const sx = Math.min(size - 1, Math.max(0, x + dx));
            const k = i * plane + y * size + x;
            noisy[k] = a * example.pixels[sy * size + sx]! + s * noise[k]!;
          }
        }
        const dropPrompt = random.nextUint32() / 4294967296 < (options.unconditionalRate ?? 0.1);
        ids.set(idsOf(dropPrompt ? '' : example.prompt), i * CLIP_MAX_LENGTH);
      }
      const learningRate = learningRateAt(step, options);
      const { loss } = await trainer.trainStep(
        {
          noisy: new ort.Tensor('float32', noisy, [batchSize, 1, size, size]),
          noise: new ort.Tensor('float32', noise, [batchSize, 1, size, size]),
          timestep: new ort.Tensor('float32', timesteps, [batchSize]),
          input_ids: new ort.Tensor('int32', ids, [batchSize, CLIP_MAX_LENGTH]),
        },
        learningRate,
      );
      if (!Number.isFinite(loss)) throw new Error(`training diverged at step ${step + 1} (loss ${loss})`);
      losses.push(loss);
      await options.onStep?.({ step: step + 1, loss, learningRate, trainer });
    }
    return { parameters: trainer.parameters(), losses };
  } finally {
    await trainer.release();
  }
}
