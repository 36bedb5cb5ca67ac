import * as fs from 'node:fs';
import * as path from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { ClipTokenizer } from '@medsyn/clip-tokenizer';
import { heldOutImageIds, importDataset } from '@medsyn/evaluation';
import {
  GENERATOR_PRESETS,
  exportGenerator,
  loadCovidCxrExamples,
  modelCard,
  trainGenerator,
  writeGeneratorTokenizer,
  type GeneratorConfig,
} from '@medsyn/generator-training';
import { decodeSafetensors, encodeSafetensors } from '@medsyn/training';
import type { RegisterCommand } from './index';

interface TrainGeneratorOptions {
  data: string;
  out: string;
  preset: string;
  steps: string;
  batch: string;
  learningRate: string;
  seed: string;
  checkpointEvery: string;
  allLicences: boolean;
  holdOutSplitSeed?: string;
  progress: boolean;
}

const positive = (flag: string, value: string, integer = true) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new Error(`${flag} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(value)}`);
  return n;
};

export const registerTrainGenerator: RegisterCommand = (program: Command) => {
  program
    .command('train-generator')
    .description(
      'Train the default text-to-chest-X-ray generator on covid-cxr-layout data and export it in the Stable Diffusion ONNX layout; rerunning resumes from the checkpoint in --out',
    )
    .requiredOption('--data <dir>', 'folder with metadata.csv and images/ (the covid-cxr layout)')
    .requiredOption('--out <dir>', 'export folder (checkpoint.safetensors is kept there while training)')
    .option('--preset <name>', `model size: ${Object.keys(GENERATOR_PRESETS).join(', ')}`, 'default')
    .option('--steps <n>', 'optimizer steps', '3000')
    .option('--batch <n>', 'batch size', '16')
    .option('--learning-rate <lr>', 'peak AdamW learning rate', '0.001')
    .option('--seed <n>', 'seed of initialisation and of every random draw', '0')
    .option('--checkpoint-every <n>', 'steps between checkpoints', '100')
    .option(
      '--all-licences',
      'train on every frontal image, not only permissively licensed ones (such a model must not be redistributed)',
    )
    .option(
      '--hold-out-split-seed <n>',
      'leave out every patient the evaluator tests on (any task) with this split_seed, so evaluations with it never test on a training image',
    )
    .option('--no-progress', 'no progress bar')
    .action(async (options: TrainGeneratorOptions) => {
      const config: GeneratorConfig | undefined = (GENERATOR_PRESETS as Record<string, GeneratorConfig>)[
        options.preset
      ];
      if (!config) throw new Error(`--preset must be one of ${Object.keys(GENERATOR_PRESETS).join(', ')}`);
      const steps = positive('--steps', options.steps);
      const batchSize = positive('--batch', options.batch);
      const learningRate = positive('--learning-rate', options.learningRate, false);
      const checkpointEvery = positive('--checkpoint-every', options.checkpointEvery);
      const seed = Number(options.seed);
      if (!Number.isInteger(seed) || seed < 0)
        throw new Error(`--seed must be an integer >= 0, got ${JSON.stringify(options.seed)}`);

      const out = path.resolve(options.out);
      fs.mkdirSync(out, { recursive: true });
      const data = path.resolve(options.data);
      let include: ((filename: string) => boolean) | undefined;
      if (options.holdOutSplitSeed !== undefined) {
        const splitSeed = Number(options.holdOutSplitSeed);
        if (!Number.isInteger(splitSeed) || splitSeed < 0)
          throw new Error(
            `--hold-out-split-seed must be an integer >= 0, got ${JSON.stringify(options.holdOutSplitSeed)}`,
          );
        const heldOut = heldOutImageIds(importDataset('covid_cxr', data), {
          tasks: ['classification', 'segmentation', 'detection'],
          split_seed: splitSeed,
        });
        include = (filename) => !heldOut.has(filename);
      }
      const examples = await loadCovidCxrExamples(data, {
        size: config.imageSize,
        include,
        ...(options.allLicences ? { licence: () => true } : {}),
      });
      if (examples.length === 0) throw new Error(`--data: no frontal image with a usable licence in ${options.data}`);
      writeGeneratorTokenizer(path.join(out, 'tokenizer'), config);
      const tokenizer = ClipTokenizer.fromDirectory(path.join(out, 'tokenizer'));

      const checkpointFile = path.join(out, 'checkpoint.safetensors');
      let resume;
      if (fs.existsSync(checkpointFile)) {
        const { tensors, metadata } = decodeSafetensors(fs.readFileSync(checkpointFile));
        resume = { tensors, step: Number(metadata.step) };
        process.stderr.write(`resuming from step ${resume.step}\n`);
      }
      const bar = options.progress
        ? new SingleBar(
            { format: 'train-generator [{bar}] {value}/{total} steps | loss {loss} | lr {lr} | ETA {eta_formatted}' },
            Presets.shades_classic,
          )
        : undefined;
      bar?.start(steps, resume?.step ?? 0, { loss: '-', lr: '-' });
      const started = Date.now();
      const { parameters, losses } = await trainGenerator({
        config,
        examples,
        tokenizer,
        steps,
        batchSize,
        learningRate,
        warmupSteps: Math.min(200, Math.floor(steps / 10)),
        maxShift: Math.round(config.imageSize / 32),
        seed,
        resume,
        onStep: ({ step, loss, learningRate: lr, trainer }) => {
          bar?.update(step, { loss: loss.toFixed(4), lr: lr.toExponential(2) });
          if (step % checkpointEvery === 0 || step === steps) {
            if (!bar)
              process.stderr.write(
                `step ${step}/${steps} loss ${loss.toFixed(4)} lr ${lr.toExponential(2)} (${Math.round((Date.now() - started) / 1000)} s)\n`,
              );
            const state = trainer.state();
            const tmp = `${checkpointFile}.tmp`;
            fs.writeFileSync(
              tmp,
              encodeSafetensors(state.tensors, {
                step: String(state.step),
                preset: options.preset,
                seed: String(seed),
              }),
            );
            fs.renameSync(tmp, checkpointFile);
          }
        },
      });
      bar?.stop();
      const parameterCount = [...parameters.values()].reduce((n, t) => n + t.data.length, 0);
      const command = `npx medsyn train-generator --data ${options.data} --out ${options.out} --preset ${options.preset} --steps ${steps} --batch ${batchSize} --learning-rate ${learningRate} --seed ${seed}${options.allLicences ? ' --all-licences' : ''}${options.holdOutSplitSeed !== undefined ? ` --hold-out-split-seed ${options.holdOutSplitSeed}` : ''}`;
      const card = modelCard({
        config,
        examples,
        steps,
        batchSize,
        learningRate,
        seed,
        unconditionalRate: 0.1,
        finalLoss: losses.at(-1) ?? NaN,
        parameterCount,
        trainingSeconds: (Date.now() - started) / 1000,
        command,
      });
      exportGenerator(out, config, parameters, card);
      fs.rmSync(checkpointFile, { force: true });
      process.stdout.write(
        `exported ${parameterCount} parameters to ${out} (final loss ${(losses.at(-1) ?? NaN).toFixed(4)})\n`,
      );
    });
};
