import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import {
  PipelineConfigError,
  incomparable,
  pretrainingArms,
  readPipelineConfig,
  runPipeline,
  verificationSummary,
  type PipelineEvent,
} from '@medsyn/pipeline';
import type { RegisterCommand } from './index';

/** 4.2s, 42s, 1m32s (rounded to the second first, so 119.6 s reads 2m00s, not 1m60s). */
export function duration(seconds: number): string {
  if (seconds < 90) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
}
const summaryText = (summary: Record<string, number | string>) =>
  Object.entries(summary)
    .map(([k, v]) => `${k} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : v}`)
    .join(', ');

/**
 * One display for the whole run: a line per finished stage, and one progress bar for the stage
 * that is running (a log line every 15 s instead where stderr is not a terminal).
 */
function progressDisplay(tty: boolean): { onEvent: (e: PipelineEvent) => void; stop: () => void } {
  const started = Date.now();
  let bar: SingleBar | undefined;
  let current = '';
  let position = '';
  let lastLog = 0;
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };
  const onEvent = (e: PipelineEvent) => {
    switch (e.type) {
      case 'services':
        process.stderr.write(
          `services: ${[...e.local.map((s) => `${s} (local)`), ...e.remote.map((s) => `${s} (remote)`)].join(', ')}\n`,
        );
        break;
      case 'stage':
        stopBar();
        current = e.stage;
        position = `${e.index + 1}/${e.total}`;
        if (!e.resumed && !tty) process.stderr.write(`[${position}] ${e.stage} ...\n`);
        break;
      case 'progress': {
        const values = {
          stage: `[${position}] ${current}`,
          unit: e.unit || 'items',
          phase: e.phase ? ` | ${e.phase}` : '',
          elapsed: duration((Date.now() - started) / 1000),
        };
        if (tty) {
          if (!bar) {
            bar = new SingleBar(
              {
                format: '{stage} [{bar}] {value}/{total} {unit}{phase} | ETA {eta_formatted} | run {elapsed}',
                hideCursor: true,
                etaBuffer: 10,
              },
              Presets.shades_classic,
            );
            bar.start(Math.max(e.total, 1), e.completed, values);
          }
          bar.setTotal(Math.max(e.total, 1));
          bar.update(e.completed, values);
        } else if (Date.now() - lastLog > 15000) {
          lastLog = Date.now();
          process.stderr.write(
            `${values.stage} ${e.completed}/${e.total} ${values.unit}${values.phase} | run ${values.elapsed}\n`,
          );
        }
        break;
      }
      case 'stage-done':
        stopBar();
        process.stderr.write(
          `[${position}] ${e.stage}: ${e.skipped ? 'done in an earlier run' : `done in ${duration(e.seconds)}`}${Object.keys(e.summary).length ? ` (${summaryText(e.summary)})` : ''}\n`,
        );
        break;
      case 'stage-verified':
        stopBar();
        process.stderr.write(
          `[${position}] ${e.stage}: done again in ${duration(e.seconds)} to verify: ${e.identical ? 'identical digests' : `NOT reproduced (${e.mismatched.join(', ')} differ)`}\n`,
        );
        break;
    }
  };
  return { onEvent, stop: stopBar };
}

export const registerPipeline: RegisterCommand = (program: Command) => {
  const pipeline = program
    .command('pipeline')
    .description('The end-to-end pipeline: anonymize -> synthesize -> pre-train (real vs synthetic) -> evaluate');
  pipeline
    .command('run')
    .description(
      'Run a pipeline config through the services (local ones are started when the config names no endpoint); rerunning resumes where it stopped',
    )
    .argument('<config>', 'YAML pipeline config (see docs/pipeline.md)')
    .option('--no-progress', 'log lines instead of a progress bar')
    .option(
      '--verify <stages...>',
      'do these finished stages again and compare their output digests ("pretrain": every arm); exit 1 if any differs',
    )
    .action(async (file: string, options: { progress: boolean; verify?: string[] }) => {
      let config;
      try {
        config = readPipelineConfig(file);
      } catch (error) {
        if (error instanceof PipelineConfigError) {
          process.stderr.write(`invalid pipeline config ${file}: ${error.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw error;
      }
      const display = progressDisplay(options.progress && Boolean(process.stderr.isTTY));
      // Ctrl-C: the local services see us go and stop gracefully; their jobs resume on the next run.
      const interrupt = () => {
        display.stop();
        process.stderr.write('\ninterrupted: run the same command again to resume\n');
        process.exit(130);
      };
      process.once('SIGINT', interrupt);
      try {
        const started = Date.now();
        const result = await runPipeline(config, { onEvent: display.onEvent, verify: options.verify });
        display.stop();
        if (options.verify) process.stdout.write(`verified: ${verificationSummary(result.verifications)}\n`);
        if (result.verifications.some((v) => !v.identical)) process.exitCode = 1;
        // A ratio involving an arm whose held-out retrieval ended at or below chance measures an encoder that did not learn.
        const arms = pretrainingArms(result.stages);
        for (const r of result.results.ratios.filter((x) => !x.metric.includes('/')))
          process.stdout.write(
            `${r.synthetic} / ${r.real}\t${r.task}\t${r.label_fraction}\t${r.metric}\t${incomparable(arms, r.synthetic, r.real) ?? r.ratio.toFixed(3)}\n`,
          );
        process.stdout.write(
          `report: ${result.report} (pipeline ${duration((Date.now() - started) / 1000)}; artifacts under ${config.store.replace(/\/$/, '')}/${result.prefix})\n`,
        );
      } catch (error) {
        display.stop();
        process.stderr.write(
          `pipeline ${config.run}: ${(error as Error).message}\nfinished stages are kept; fix the cause and run the same command again to resume\n`,
        );
        process.exitCode = 1;
      } finally {
        process.off('SIGINT', interrupt);
      }
    });
};
