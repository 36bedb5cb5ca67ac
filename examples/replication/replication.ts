// npm run experiment:replication [-- --verify pretrain]
// The paper's experiment at small scale, on ../shared/data/covid-cxr (or MEDSYN_SHARED_DATA):
// encoders pre-trained on real image/report pairs vs on synthetic images generated from the same
// anonymized reports, for ConVIRT, GLoRIA and MGCA, each pre-trained with three seeds, then
// classification, segmentation and detection at 1/10/100 % labels over three downstream seeds,
// with a random-init floor. Every arm is scored for held-out retrieval on the same real images.
// The tables pool pre-training x downstream seeds (9 runs a cell); ratios are of pooled means.
//
// Clean by construction: the evaluator's test patients (every task, split_seed 0) are left out of
// the generator's training (checked below from its model card), of the pre-training pairs and of
// the synthetic prompts. Writes .medsyn/replication/{report.html,tables.md} and prints the tables.
// Rerun with `--verify pretrain` after a run: every arm is pre-trained again and its bundle digest
// compared with the recorded one (exit 1 if any differs); nothing else is redone.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'csv-parse/sync';
import { type TaskName } from '@medsyn/config';
import { heldOutImageIds, importDataset } from '@medsyn/evaluation';
import { covidCxrReportText } from '@medsyn/generator-training';
import { parsePipelineConfig, renderComparisonTables, runPipeline, verificationSummary } from '@medsyn/pipeline';
import { repoRoot, sharedDataDir } from '@medsyn/testing';

const { values: args } = parseArgs({ options: { verify: { type: 'string', multiple: true } } });
const SPLIT_SEED = 0;
const PRETRAINING_SEEDS = [0, 1, 2];
const DOWNSTREAM_SEEDS = [0, 1, 2];
const TASKS: TaskName[] = ['classification', 'segmentation', 'detection'];
const MAIN_METRIC: Record<string, string> = {
  classification: 'auroc_macro',
  segmentation: 'dice',
  detection: 'map_40_75',
};
const root = path.join(sharedDataDir, 'covid-cxr');
const out = path.join(repoRoot, '.medsyn', 'replication');
const generator = path.join(repoRoot, 'models', 'default-generator');

function fail(message: string): never {
  process.stderr.write(`experiment:replication: ${message}\n`);
  process.exit(1);
}

if (!fs.existsSync(path.join(root, 'metadata.csv')))
  fail(`needs the covid-cxr data in ${root} (set MEDSYN_SHARED_DATA)`);
const dataset = importDataset('covid_cxr', root);
const heldOut = heldOutImageIds(dataset, { tasks: TASKS, split_seed: SPLIT_SEED });

// The generator must have been trained on the training split only: its card says how, and names every image.
const card = fs.readFileSync(path.join(generator, 'README.md'), 'utf8');
if (!card.includes(`--hold-out-split-seed ${SPLIT_SEED}`))
  fail(`${generator} was not trained with --hold-out-split-seed ${SPLIT_SEED} (see its README.md)`);
const trainedOn = [...card.matchAll(/^- (\S+) \(/gm)].map((m) => m[1]!);
const leaked = trainedOn.filter((f) => heldOut.has(f));
if (trainedOn.length === 0 || leaked.length)
  fail(`the generator's card lists ${trainedOn.length} training images, ${leaked.length} of them test patients'`);

// Reports: every frontal radiograph of a training patient, its text from the metadata (all licences: local use only).
const rows = parse(fs.readFileSync(path.join(root, 'metadata.csv')), {
  columns: true,
  skip_empty_lines: true,
}) as Record<string, string>[];
const reports = rows
  .filter(
    (r) =>
      r.view && r.view !== 'L' && !heldOut.has(r.filename!) && fs.existsSync(path.join(root, 'images', r.filename!)),
  )
  .map((r) =>
    JSON.stringify({
      id: r.filename,
      patient: r.patientid,
      text: covidCxrReportText(r),
      image: path.join(root, 'images', r.filename!),
    }),
  );
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'reports.jsonl'), `${reports.join('\n')}\n`);
process.stderr.write(
  `${reports.length} training reports (${heldOut.size} images of test patients left out); generator trained on ${trainedOn.length} images, none of a test patient\n`,
);

const config = parsePipelineConfig(
  {
    run: 'replication',
    store: 'file://.medsyn',
    report: '.medsyn/replication/report.html',
    input: { reports: '.medsyn/replication/reports.jsonl', patient_field: 'patient', image_field: 'image' },
    synthesize: {
      model: 'models/default-generator',
      num_inference_steps: 25,
      guidance_scale: 3,
      scheduler: 'ddim',
      seed: 0,
    },
    pretrain: {
      methods: ['convirt', 'gloria', 'mgca'],
      data: ['real', 'synthetic'],
      validation_fraction: 0.2,
      seeds: PRETRAINING_SEEDS,
      config: {
        image_encoder: { architecture: 'resnet18', image_size: 64, width: 16 },
        text_encoder: { layers: 2, hidden_size: 64, heads: 4, max_length: 64, vocab_size: 1000 },
        batch_size: 16,
        epochs: 24,
        embedding_size: 64,
        optimizer: { name: 'adamw', learning_rate: 0.001, weight_decay: 0.0001 },
        schedule: { warmup_steps: 10, decay: 'cosine' },
        seed: 0,
        checkpoint_every_steps: 50,
      },
    },
    evaluate: {
      dataset: { format: 'covid_cxr', root },
      tasks: TASKS,
      label_fractions: [0.01, 0.1, 1],
      seeds: DOWNSTREAM_SEEDS,
      split_seed: SPLIT_SEED,
      report_samples: 2,
    },
  },
  repoRoot,
);

let lastLine = 0;
const started = Date.now();
runPipeline(config, {
  verify: args.verify,
  onEvent: (e) => {
    if (e.type === 'stage-done')
      process.stderr.write(
        `${e.stage}: ${e.skipped ? 'done in an earlier run' : `${e.seconds.toFixed(0)} s`} ${JSON.stringify(e.summary)}\n`,
      );
    else if (e.type === 'stage-verified')
      process.stderr.write(
        `${e.stage}: done again in ${e.seconds.toFixed(0)} s: ${e.identical ? 'identical digests' : `NOT reproduced (${e.mismatched.join(', ')})`}\n`,
      );
    else if (e.type === 'progress' && Date.now() - lastLine > 30000) {
      lastLine = Date.now();
      process.stderr.write(`  ${e.stage}: ${e.completed}/${e.total} ${e.unit} ${e.phase}\n`);
    }
  },
})
  .then((result) => {
    const tables = renderComparisonTables(result.results, result.stages, { tasks: TASKS, metrics: MAIN_METRIC });
    // The generator as uploaded: models/<folder>-<first 12 hex of its files' digest>/.
    const text = `${tables}\nGenerator: ${result.stages.synthesize?.outputs.model}\nReport: ${result.report} (${((Date.now() - started) / 60000).toFixed(1)} min)\n`;
    if (args.verify) {
      const line = `Verified: ${verificationSummary(result.verifications)}\n`;
      fs.writeFileSync(path.join(out, 'verification.txt'), line);
      process.stdout.write(line);
      if (result.verifications.some((v) => !v.identical)) process.exitCode = 1;
      return;
    }
    fs.writeFileSync(path.join(out, 'tables.md'), text);
    process.stdout.write(text);
  })
  .catch((error: Error) => fail(error.message));
