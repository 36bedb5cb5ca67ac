import * as fs from 'node:fs';
import * as path from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { FileArtifactStore, putJsonl } from '@medsyn/artifact-store';
import {
  TextToImageModel,
  imageStatisticsCheck,
  QualityGate,
  synthesizeDatasetShard,
  SCHEDULER_KINDS,
  type SchedulerKind,
} from '@medsyn/diffusion';
import type { RegisterCommand } from './index';

interface SynthesizeOptions {
  model: string;
  prompts: string;
  out: string;
  steps?: string;
  guidanceScale?: string;
  negativePrompt?: string;
  scheduler?: string;
  seed?: string;
  size?: string;
  bitDepth: string;
  batch: string;
  imagesPerPrompt: string;
  maxAttempts: string;
  shard: string;
  executionProvider: string;
  qualityGate: boolean;
  progress: boolean;
}

const integer = (flag: string, value: string, min: number) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${flag} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
};

/** JSONL lines {"id", "prompt"} (the anonymizer's manifest), or a text file with one prompt per line. */
function readPrompts(file: string): { id: string; prompt: string }[] {
  if (!fs.existsSync(file)) throw new Error(`--prompts: ${file} not found`);
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  if (file.endsWith('.jsonl') || file.endsWith('.json'))
    return lines
      .filter((l) => l.trim())
      .map((l, i) => {
        try {
          return JSON.parse(l) as { id: string; prompt: string };
        } catch {
          throw new Error(`--prompts: line ${i + 1} of ${file} is not JSON`);
        }
      });
  return lines
    .map((l) => l.trim())
    .filter(Boolean)
    .map((prompt, i) => ({ id: `prompt-${String(i).padStart(6, '0')}`, prompt }));
}

export const registerSynthesize: RegisterCommand = (program: Command) => {
  program
    .command('synthesize')
    .description(
      'Generate chest X-rays from prompts with a Stable Diffusion ONNX export (e.g. RoentGen); rerunning resumes',
    )
    .requiredOption('--model <dir>', 'model directory in the ONNX export layout (model_index.json, unet/, ...)')
    .requiredOption(
      '--prompts <file>',
      'prompt manifest: JSONL with "id" and "prompt", or text with one prompt per line',
    )
    .requiredOption('--out <dir>', 'output folder: images/, records/ and the pair manifest')
    .option('--steps <n>', "denoising steps (default: the model's, 75 for RoentGen-v2)")
    .option('--guidance-scale <g>', "classifier-free guidance scale (default: the model's, 3 for RoentGen-v2)")
    .option('--negative-prompt <text>', 'negative prompt for every image')
    .option('--scheduler <name>', `one of ${SCHEDULER_KINDS.join(', ')} (default: the model's)`)
    .option('--seed <n>', "base seed; each image's seed derives from it and the prompt id")
    .option('--size <px>', 'image height and width (a multiple of 8)')
    .option('--bit-depth <8|16>', 'PNG bit depth', '8')
    .option('--batch <n>', 'images denoised together', '4')
    .option('--images-per-prompt <n>', 'images per prompt', '1')
    .option('--max-attempts <n>', 'quality-gate attempts per image', '3')
    .option('--shard <i/n>', 'generate only shard i of n (0-based)', '0/1')
    .option('--execution-provider <name>', 'cpu, cuda or webgpu', 'cpu')
    .option('--no-quality-gate', 'keep every image (no blank/saturated/noise check)')
    .option('--no-progress', 'no progress bar')
    .action(async (options: SynthesizeOptions) => {
      if (options.scheduler && !SCHEDULER_KINDS.includes(options.scheduler as SchedulerKind))
        throw new Error(`--scheduler must be one of ${SCHEDULER_KINDS.join(', ')}`);
      if (!['cpu', 'cuda', 'webgpu'].includes(options.executionProvider))
        throw new Error('--execution-provider must be cpu, cuda or webgpu');
      const shard = /^(\d+)\/(\d+)$/.exec(options.shard);
      if (!shard) throw new Error('--shard must look like i/n, e.g. 0/4');
      const bitDepth = integer('--bit-depth', options.bitDepth, 8);
      if (bitDepth !== 8 && bitDepth !== 16) throw new Error('--bit-depth must be 8 or 16');
      const size = options.size ? integer('--size', options.size, 8) : undefined;

      const out = path.resolve(options.out);
      const store = new FileArtifactStore(out);
      await putJsonl(store, 'prompts.jsonl', readPrompts(options.prompts));
      const model = await TextToImageModel.load(path.resolve(options.model), {
        executionProvider: options.executionProvider as 'cpu',
      });
      const gate = options.qualityGate ? new QualityGate([imageStatisticsCheck()]) : undefined;
      const bar =
        options.progress && process.stderr.isTTY
          ? new SingleBar(
              {
                format: 'synthesize [{bar}] {value}/{total} images | {rate} img/s | rejected {rejected}',
                hideCursor: true,
              },
              Presets.shades_classic,
            )
          : undefined;
      const startedAt = Date.now();
      let started = false;
      try {
        const result = await synthesizeDatasetShard(
          store,
          model,
          {
            promptsKey: 'prompts.jsonl',
            outputPrefix: '',
            shard: { index: Number(shard[1]), count: Number(shard[2]) },
            imagesPerPrompt: integer('--images-per-prompt', options.imagesPerPrompt, 1),
            params: {
              numInferenceSteps: options.steps ? integer('--steps', options.steps, 1) : undefined,
              guidanceScale: options.guidanceScale !== undefined ? Number(options.guidanceScale) : undefined,
              negativePrompt: options.negativePrompt,
              scheduler: options.scheduler as SchedulerKind | undefined,
              seed: options.seed,
              height: size,
              width: size,
              bitDepth,
              maxAttempts: integer('--max-attempts', options.maxAttempts, 1),
            },
          },
          {
            gate,
            maxBatch: integer('--batch', options.batch, 1),
            onProgress: (p) => {
              const rate = (p.completed / Math.max(1e-3, (Date.now() - startedAt) / 1000)).toFixed(2);
              if (bar) {
                if (!started) bar.start(p.total, p.completed, { rate, rejected: p.rejected });
                started = true;
                bar.update(p.completed, { rate, rejected: p.rejected });
              } else {
                process.stderr.write(`synthesize: ${p.completed}/${p.total} images\n`);
              }
            },
          },
        );
        bar?.stop();
        const seconds = (Date.now() - startedAt) / 1000;
        const reasons = Object.entries(result.rejections)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
        process.stdout.write(
          `${result.accepted} accepted, ${result.rejected} rejected${reasons ? ` (${reasons})` : ''}, ${result.invalid} invalid prompt lines, ${seconds.toFixed(1)} s\n`,
        );
        process.stdout.write(`pairs: ${result.pairs.uri}\n`);
      } finally {
        bar?.stop();
        await model.close();
      }
    });
};
