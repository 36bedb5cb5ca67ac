import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { openStore } from '@medsyn/artifact-store';
import { parsePretrainingConfig, type PretrainingConfig } from '@medsyn/config';
import { PretrainingCancelledError, runPretraining, type PretrainingProgress } from '@medsyn/vlp';
import type { RegisterCommand } from './index';

/** What `medsyn pretrain` reads: a PretrainingConfig in the proto's snake_case names, plus where to work. */
export interface PretrainFile {
  config: PretrainingConfig;
  /** Artifact store URI; a relative file:// path is relative to the config file. */
  store: string;
  /** Store prefix of the run's checkpoints and outputs. */
  outputPrefix: string;
}

/**
 * Reads a YAML or JSON pre-training config. `store` defaults to MEDSYN_STORE, else the config's
 * folder, so manifests and vocabularies can be named by paths relative to the config.
 */
export function readPretrainFile(file: string, env: NodeJS.ProcessEnv = process.env): PretrainFile {
  if (!fs.existsSync(file)) throw new Error(`config not found: ${file}`);
  let raw: unknown;
  try {
    raw = parseYaml(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`config ${file} is not valid YAML/JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`config ${file} must be a mapping`);
  const { store, output_prefix: outputPrefix, ...rest } = raw as Record<string, unknown>;
  const base = path.dirname(path.resolve(file));
  const storeUri = typeof store === 'string' && store ? store : (env.MEDSYN_STORE ?? pathToFileURL(base).href);
  const resolvedStore =
    storeUri.startsWith('file://') && !storeUri.startsWith('file:///')
      ? pathToFileURL(path.resolve(base, storeUri.slice('file://'.length))).href
      : storeUri;
  return {
    config: parsePretrainingConfig(rest),
    store: resolvedStore,
    outputPrefix:
      typeof outputPrefix === 'string' && outputPrefix
        ? outputPrefix
        : `runs/${path.basename(file).replace(/\.(ya?ml|json)$/i, '')}`,
  };
}

const parts = (p: PretrainingProgress) =>
  Object.entries(p.parts)
    .filter(([name]) => name !== 'retrieval_top1')
    .map(([name, v]) => `${name} ${v.toFixed(3)}`)
    .join(', ');

export const registerPretrain: RegisterCommand = (program: Command) => {
  program
    .command('pretrain')
    .description(
      'Pre-train image and text encoders on image-report pairs (ConVIRT, GLoRIA, MGCA); resumes an interrupted run from its last checkpoint',
    )
    .requiredOption('--config <file>', 'YAML or JSON pre-training config (see docs/pretrainer.md)')
    .option('--store <uri>', "artifact store (default: the config's store, MEDSYN_STORE, else the config's folder)")
    .option(
      '--output-prefix <prefix>',
      "store prefix for checkpoints and outputs (default: the config's output_prefix, else runs/<config name>)",
    )
    .option('--no-progress', 'no progress bar (a log line per step instead)')
    .action(async (options: { config: string; store?: string; outputPrefix?: string; progress: boolean }) => {
      const file = readPretrainFile(options.config);
      const store = openStore(options.store ?? file.store);
      await store.check();
      const prefix = options.outputPrefix ?? file.outputPrefix;
      const bar =
        options.progress && process.stderr.isTTY
          ? new SingleBar(
              {
                format:
                  'pretrain [{bar}] {value}/{total} steps | epoch {epoch} | loss {loss} ({parts}) | lr {lr} | {rate} samples/s | ETA {eta_formatted}',
                hideCursor: true,
                etaBuffer: 20,
              },
              Presets.shades_classic,
            )
          : undefined;
      // Ctrl-C: write a checkpoint and stop; running the same command again resumes.
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let started = false;
      try {
        const result = await runPretraining({
          store,
          config: file.config,
          prefix,
          signal: controller.signal,
          onProgress: (p) => {
            const values = {
              epoch: `${p.epoch}/${p.epochs}`,
              loss: p.loss.toFixed(4),
              parts: parts(p),
              lr: p.learningRate.toExponential(2),
              rate: p.samplesPerSecond.toFixed(1),
            };
            if (!bar) {
              process.stderr.write(
                `step ${p.step}/${p.totalSteps} epoch ${values.epoch} loss ${values.loss} (${values.parts}) lr ${values.lr} ${values.rate} samples/s\n`,
              );
              return;
            }
            if (!started) bar.start(p.totalSteps, p.step - 1, values);
            started = true;
            bar.update(p.step, values);
          },
        });
        bar?.stop();
        if (result.resumedFromStep > 0) process.stdout.write(`resumed from step ${result.resumedFromStep}\n`);
        process.stdout.write(
          `steps ${result.steps}, final loss ${result.finalLoss.toFixed(4)}, ${result.samplesPerSecond.toFixed(1)} samples/s, data wait ${(100 * result.dataWaitFraction).toFixed(1)}%\n`,
        );
        if (result.retrieval)
          process.stdout.write(
            `held-out image->text top-1 ${result.retrieval.top1.toFixed(3)} (chance ${result.retrieval.chance.toFixed(3)}, ${result.retrieval.pairs} pairs)\n`,
          );
        if (result.skippedRecords)
          process.stdout.write(`skipped ${result.skippedRecords} records: ${JSON.stringify(result.skippedReasons)}\n`);
        process.stdout.write(`encoder bundle: ${store.uriOf(result.bundlePrefix)}\n`);
      } catch (error) {
        bar?.stop();
        if (error instanceof PretrainingCancelledError) {
          process.stdout.write(`${error.message}; run the same command again to resume\n`);
          return;
        }
        throw error;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await store.close();
      }
    });
};
