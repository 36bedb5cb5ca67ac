import * as fs from 'node:fs';
import * as path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { InvalidArgumentError, type Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { type EvaluationConfig } from '@medsyn/config';
import { renderReport, type MetricSummary } from '@medsyn/evaluation-report';
import { runEvaluation, writeEvaluationOutput } from '@medsyn/evaluation';
import type { RegisterCommand } from './index';

/** Reads a YAML or JSON config; bundle and dataset paths are relative to the config file. */
export function readEvaluationConfig(file: string): EvaluationConfig & { output?: string } {
  if (!fs.existsSync(file)) throw new Error(`config not found: ${file}`);
  let config: EvaluationConfig & { output?: string };
  try {
    config = parseYaml(fs.readFileSync(file, 'utf8')) as EvaluationConfig & { output?: string };
  } catch (error) {
    throw new Error(`config ${file} is not valid YAML/JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  const base = path.dirname(path.resolve(file));
  const resolve = (p: unknown) => (typeof p === 'string' && p ? path.resolve(base, p) : p);
  for (const e of config?.encoders ?? []) if (e.bundle) e.bundle = resolve(e.bundle) as string;
  if (config?.dataset) config.dataset.root = resolve(config.dataset.root) as string;
  if (config?.output) config.output = resolve(config.output) as string;
  return config;
}

function parsePositiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be an integer >= 1');
  return n;
}

const cell = (m: MetricSummary) => `${m.mean.toFixed(3)} ± ${m.std.toFixed(3)}`;

export const registerEvaluate: RegisterCommand = (program: Command) => {
  program
    .command('evaluate')
    .description(
      'Evaluate frozen encoders (linear probe, segmentation, detection, zero-shot) and write results.json, splits.json and report.html',
    )
    .requiredOption('--config <file>', 'YAML or JSON evaluation config (see docs/evaluator.md)')
    .option('--out <dir>', "output folder (default: the config's output, else ./evaluation)")
    .option(
      '--parallel-runs <n>',
      'segmentation and detection runs trained at once on CPU, each in a worker thread (default: one per core)',
      parsePositiveInteger,
    )
    .option('--no-progress', 'no progress bar (log lines instead)')
    .action(async (options: { config: string; out?: string; parallelRuns?: number; progress: boolean }) => {
      const config = readEvaluationConfig(options.config);
      const out = path.resolve(options.out ?? config.output ?? 'evaluation');
      delete config.output;
      const bar =
        options.progress && process.stderr.isTTY
          ? new SingleBar(
              { format: 'evaluate [{bar}] {value}/{total} runs | {phase}', hideCursor: true },
              Presets.shades_classic,
            )
          : undefined;
      let started = false;
      const output = await runEvaluation(config, {
        onProgress: (p) => {
          if (!bar) return;
          if (!started) bar.start(p.total, p.completed, { phase: p.phase });
          started = true;
          bar.update(p.completed, { phase: p.phase });
        },
        log: bar ? undefined : (line) => process.stderr.write(`${line}\n`),
        parallelRuns: options.parallelRuns,
      });
      bar?.stop();
      const files = writeEvaluationOutput(out, output, renderReport(output.results));
      for (const m of output.results.metrics.filter((x) => !x.metric.includes('/'))) {
        process.stdout.write(`${m.encoder}\t${m.task}\t${m.label_fraction}\t${m.metric}\t${cell(m)}\n`);
      }
      for (const r of output.results.ratios.filter((x) => !x.metric.includes('/')))
        process.stdout.write(`synthetic/real\t${r.task}\t${r.label_fraction}\t${r.metric}\t${r.ratio.toFixed(3)}\n`);
      process.stdout.write(`wrote ${Object.values(files).join(', ')}\n`);
    });
};
