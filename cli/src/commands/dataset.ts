import * as path from 'node:path';
import { Presets, SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { DEFAULT_STORE_URI, FileArtifactStore, openStore, type ArtifactStore } from '@medsyn/artifact-store';
import { DEFAULT_SHARD_SIZE, exportDataset, importDataset } from '@medsyn/dataset';
import type { RegisterCommand } from './index';

interface ExportOptions {
  store?: string;
  pairs: string;
  reports?: string;
  out: string;
  shardSize: string;
  name?: string;
  description?: string;
  generator: string;
  generatorUri?: string;
  generatorSha256?: string;
  promptsSource?: string;
  deidMode?: string;
  deidRecall?: string;
  deidRecallSource?: string;
  licence?: string;
  progress: boolean;
}

interface ImportOptions {
  bundle: string;
  store?: string;
  prefix?: string;
  progress: boolean;
}

/** A store URI (file://, s3://) as it is, anything else a local folder. */
function openFolderOrStore(location: string): ArtifactStore {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(location)
    ? openStore(location)
    : new FileArtifactStore(path.resolve(location));
}

/** A progress bar on a terminal, nothing otherwise (the summary line says the rest). */
function progressBar(
  enabled: boolean,
  label: string,
): { update: (p: { samples: number; total: number }) => void; stop: () => void } {
  if (!enabled || !process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new SingleBar(
    { format: `${label} [{bar}] {value}/{total} samples`, hideCursor: true },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update: (p) => {
      if (!started) bar.start(p.total, 0);
      started = true;
      bar.update(p.samples);
    },
    stop: () => bar.stop(),
  };
}

export const registerDataset: RegisterCommand = (program: Command) => {
  const dataset = program
    .command('dataset')
    .description(
      'Share a synthetic dataset: WebDataset tar shards with a dataset card, and bring one back for pre-training',
    );

  dataset
    .command('export')
    .description(
      'Write synthetic image-report pairs as tar shards (<key>.png, <key>.txt, <key>.json) with dataset.json and README.md',
    )
    .option(
      '--store <uri>',
      'artifact store holding the pair manifests and images (default: MEDSYN_STORE, else file://./.medsyn)',
    )
    .requiredOption(
      '--pairs <keys>',
      'pair manifests, comma-separated: the synthesizer\'s pairs-shard-*.jsonl or {"image", "report"} lines',
    )
    .option(
      '--reports <key>',
      "the anonymizer's anonymized.jsonl: each .txt gets the full anonymized report (joined by the pairs' id) instead of the prompt",
    )
    .requiredOption(
      '--out <dir-or-uri>',
      'where the bundle goes: a local folder, or a store URI such as s3://bucket/datasets/x?endpoint=...',
    )
    .option('--shard-size <n>', 'samples per tar shard', String(DEFAULT_SHARD_SIZE))
    .option('--name <name>', 'dataset name (letters, digits, ".", "_", "-")')
    .option('--description <text>', 'one paragraph for the card')
    .requiredOption('--generator <name>', 'the model that made the images, e.g. RoentGen-v2')
    .option('--generator-uri <uri>', 'where its weights are')
    .option('--generator-sha256 <hex>', 'digest of its weights')
    .option('--prompts-source <text>', 'where the prompts come from, e.g. "IU X-ray impressions"')
    .option('--deid-mode <mode>', 'how the reports were de-identified (mask, surrogate, ...)')
    .option('--deid-recall <fraction>', 'PHI recall of that de-identification, in [0, 1]')
    .option('--deid-recall-source <text>', 'where that recall was measured (required with --deid-recall)')
    .option('--licence <licence>', 'the licence you grant on the dataset, e.g. CC-BY-4.0 (default: unspecified)')
    .option('--no-progress', 'no progress bar')
    .action(async (options: ExportOptions) => {
      const shardSize = Number(options.shardSize);
      if (!Number.isInteger(shardSize) || shardSize < 1)
        throw new Error(`--shard-size must be an integer >= 1, got ${JSON.stringify(options.shardSize)}`);
      let recall: number | undefined;
      if (options.deidRecall !== undefined) {
        recall = Number(options.deidRecall);
        if (!Number.isFinite(recall) || recall < 0 || recall > 1)
          throw new Error(
            `--deid-recall must be a fraction in [0, 1] (0.987, not 98.7), got ${JSON.stringify(options.deidRecall)}`,
          );
        if (!options.deidRecallSource?.trim())
          throw new Error('--deid-recall-source is required with --deid-recall: say where the recall was measured');
      }
      const pairs = options.pairs
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean);
      if (!options.licence)
        process.stderr.write('medsyn: no --licence given: the card says the licence is unspecified\n');
      const store = openStore(options.store ?? process.env.MEDSYN_STORE ?? DEFAULT_STORE_URI);
      const out = openFolderOrStore(options.out);
      const bar = progressBar(options.progress, 'export');
      try {
        const result = await exportDataset({
          store,
          pairs,
          reports: options.reports,
          out,
          shardSize,
          card: {
            name: options.name,
            description: options.description,
            generator: { name: options.generator, uri: options.generatorUri, sha256: options.generatorSha256 },
            promptsSource: options.promptsSource,
            deid: { mode: options.deidMode, recall, recallSource: options.deidRecallSource },
            licence: options.licence,
          },
          onProgress: bar.update,
        });
        bar.stop();
        const skipped = Object.entries(result.card.skipped)
          .map(([reason, n]) => `${n} ${reason}`)
          .join(', ');
        process.stdout.write(
          `${result.samples} samples in ${result.shards.length} shards${skipped ? ` (left out: ${skipped})` : ''}\n`,
        );
        process.stdout.write(`card: ${out.uriOf(result.cardKey)}\n`);
      } finally {
        bar.stop();
        await store.close();
        await out.close();
      }
    });

  dataset
    .command('import')
    .description(
      'Check a dataset bundle (format, shard and image digests) and write its images and a pair manifest for pre-training',
    )
    .requiredOption('--bundle <dir-or-uri>', 'the bundle: a local folder, or a store URI')
    .option('--store <uri>', 'artifact store to import into (default: MEDSYN_STORE, else file://./.medsyn)')
    .option('--prefix <prefix>', 'folder in the store (default: datasets/<name>-<digest>/)')
    .option('--no-progress', 'no progress bar')
    .action(async (options: ImportOptions) => {
      const bundle = openFolderOrStore(options.bundle);
      const store = openStore(options.store ?? process.env.MEDSYN_STORE ?? DEFAULT_STORE_URI);
      const bar = progressBar(options.progress, 'import');
      try {
        const prefix =
          options.prefix === undefined || options.prefix.endsWith('/') ? options.prefix : `${options.prefix}/`;
        const result = await importDataset({ bundle, store, prefix, onProgress: bar.update });
        bar.stop();
        process.stdout.write(
          `${result.samples} samples imported into ${store.uriOf(result.manifestKey).replace(/pairs\.jsonl$/, '')}\n`,
        );
        process.stdout.write(`data.synthetic_pairs: ${result.manifestKey}\n`);
      } finally {
        bar.stop();
        await bundle.close();
        await store.close();
      }
    });
};
