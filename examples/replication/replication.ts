// npm run experiment:replication
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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'csv-parse/sync';
import { heldOutImageIds, importDataset, type EvaluationResults, type TaskName } from '@medsyn/evaluation';
import { covidCxrReportText } from '@medsyn/generator';
import { groupOf, incomparable, parsePipelineConfig, pooledMetrics, pooledRatios, pretrainingArms, runPipeline } from '@medsyn/pipeline';
import { repoRoot, sharedDataDir } from '@medsyn/testing';

const SPLIT_SEED = 0;
const PRETRAINING_SEEDS = [0, 1, 2];
const DOWNSTREAM_SEEDS = [0, 1, 2];
const TASKS: TaskName[] = ['classification', 'segmentation', 'detection'];
const MAIN_METRIC: Record<string, string> = { classification: 'auroc_macro', segmentation: 'dice', detection: 'map_40_75' };
const root = path.join(sharedDataDir, 'covid-cxr');
const out = path.join(repoRoot, '.medsyn', 'replication');
const generator = path.join(repoRoot, 'models', 'default-generator');

function fail(message: string): never {
  process.stderr.write(`experiment:replication: ${message}\n`);
  process.exit(1);
}

if (!fs.existsSync(path.join(root, 'metadata.csv'))) fail(`needs the covid-cxr data in ${root} (set MEDSYN_SHARED_DATA)`);
const dataset = importDataset('covid_cxr', root);
const heldOut = heldOutImageIds(dataset, { tasks: TASKS, split_seed: SPLIT_SEED });

// The generator must have been trained on the training split only: its card says how, and names every image.
const card = fs.readFileSync(path.join(generator, 'README.md'), 'utf8');
if (!card.includes(`--hold-out-split-seed ${SPLIT_SEED}`)) fail(`${generator} was not trained with --hold-out-split-seed ${SPLIT_SEED} (see its README.md)`);
const trainedOn = [...card.matchAll(/^- (\S+) \(/gm)].map((m) => m[1]!);
const leaked = trainedOn.filter((f) => heldOut.has(f));
if (trainedOn.length === 0 || leaked.length) fail(`the generator's card lists ${trainedOn.length} training images, ${leaked.length} of them test patients'`);

// Reports: every frontal radiograph of a training patient, its text from the metadata (all licences: local use only).
const rows = parse(fs.readFileSync(path.join(root, 'metadata.csv')), { columns: true, skip_empty_lines: true }) as Record<string, string>[];
const reports = rows
  .filter((r) => r.view && r.view !== 'L' && !heldOut.has(r.filename!) && fs.existsSync(path.join(root, 'images', r.filename!)))
  .map((r) => JSON.stringify({ id: r.filename, patient: r.patientid, text: covidCxrReportText(r), image: path.join(root, 'images', r.filename!) }));
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'reports.jsonl'), `${reports.join('\n')}\n`);
process.stderr.write(`${reports.length} training reports (${heldOut.size} images of test patients left out); generator trained on ${trainedOn.length} images, none of a test patient\n`);

const config = parsePipelineConfig(
  {
    run: 'replication',
    store: 'file://.medsyn',
    report: '.medsyn/replication/report.html',
    input: { reports: '.medsyn/replication/reports.jsonl', patient_field: 'patient', image_field: 'image' },
    synthesize: { model: 'models/default-generator', num_inference_steps: 25, guidance_scale: 3, scheduler: 'ddim', seed: 0 },
    pretrain: {
      methods: ['convirt', 'gloria', 'mgca'],
      data: ['real', 'synthetic'],
      validation_fraction: 0.1,
      seeds: PRETRAINING_SEEDS,
      config: {
        image_encoder: { architecture: 'resnet18', image_size: 64, width: 16 },
        text_encoder: { layers: 2, hidden_size: 64, heads: 4, max_length: 64, vocab_size: 1000 },
        batch_size: 16,
        epochs: 8,
        embedding_size: 64,
        optimizer: { name: 'adamw', learning_rate: 0.001, weight_decay: 0.0001 },
        schedule: { warmup_steps: 10, decay: 'cosine' },
        seed: 0,
        checkpoint_every_steps: 50,
      },
    },
    evaluate: { dataset: { format: 'covid_cxr', root }, tasks: TASKS, label_fractions: [0.01, 0.1, 1], seeds: DOWNSTREAM_SEEDS, split_seed: SPLIT_SEED, report_samples: 2 },
  },
  repoRoot,
);

let lastLine = 0;
const started = Date.now();
runPipeline(config, {
  onEvent: (e) => {
    if (e.type === 'stage-done') process.stderr.write(`${e.stage}: ${e.skipped ? 'done in an earlier run' : `${e.seconds.toFixed(0)} s`} ${JSON.stringify(e.summary)}\n`);
    else if (e.type === 'progress' && Date.now() - lastLine > 30000) {
      lastLine = Date.now();
      process.stderr.write(`  ${e.stage}: ${e.completed}/${e.total} ${e.unit} ${e.phase}\n`);
    }
  },
})
  .then((result) => {
    const tables = renderTables(result.results, result.stages as Record<string, { seconds: number; summary: Record<string, number | string> }>);
    // The generator as uploaded: models/<folder>-<first 12 hex of its files' digest>/.
    const text = `${tables}\nGenerator: ${result.stages.synthesize?.outputs.model}\nReport: ${result.report} (${((Date.now() - started) / 60000).toFixed(1)} min)\n`;
    fs.writeFileSync(path.join(out, 'tables.md'), text);
    process.stdout.write(text);
  })
  .catch((error: Error) => fail(error.message));

const cell = (m?: { mean: number; std: number }) => (m ? `${m.mean.toFixed(3)} ± ${m.std.toFixed(3)}` : '—');

/**
 * Markdown: per task, main metric by label fraction for every arm (its pre-training seeds and the
 * downstream seeds pooled) and synthetic/real per method (of the pooled means). Each table carries
 * the marker `npm run check:results` reads, so that docs/results.md can quote it checked.
 */
function renderTables(results: EvaluationResults, stages: Record<string, { seconds: number; summary: Record<string, number | string> }>): string {
  const groups = [...new Set(results.encoders.map((e) => groupOf(e.name)))];
  const cells = pooledMetrics(results);
  const ratios = pooledRatios(cells);
  const arms = pretrainingArms(stages);
  const seedsOf = (group: string) => Math.max(1, arms.filter((a) => a.group === group).length);
  const downstream = results.config.seeds.length;
  const lines: string[] = [];
  for (const task of TASKS) {
    const metric = MAIN_METRIC[task]!;
    const fractions = [...new Set(cells.filter((m) => m.task === task).map((m) => m.label_fraction))].sort((a, b) => a - b);
    const methods = [...new Set(ratios.filter((r) => r.task === task).map((r) => r.method))];
    const pretrained = groups.find((g) => g !== 'random-init');
    lines.push(
      `### ${task} (${metric}; mean ± std of ${pretrained ? seedsOf(pretrained) * downstream : downstream} runs per pre-trained arm: ${pretrained ? seedsOf(pretrained) : 0} pre-training seeds x downstream seeds ${results.config.seeds.join(', ')}; random-init ${downstream} runs; split ${JSON.stringify(results.splits[task])})`,
      '',
      `<!-- results.json: table ${task} ${metric} -->`,
    );
    lines.push(`| labels | ${groups.join(' | ')} | ${methods.map((m) => `${m}-synthetic / real`).join(' | ')} |`);
    lines.push(`|---|${groups.map(() => '---').join('|')}|${methods.map(() => '---').join('|')}|`);
    for (const f of fractions) {
      const get = (group: string) => cells.find((m) => m.group === group && m.task === task && m.label_fraction === f && m.metric === metric);
      // A ratio involving an arm any seed of which did not learn (retrieval at chance) is refused, not printed.
      const shown = methods.map((method) => {
        const r = ratios.find((x) => x.method === method && x.task === task && x.label_fraction === f && x.metric === metric);
        return r ? (incomparable(arms, `${method}-synthetic`, `${method}-real`) ?? r.ratio.toFixed(3)) : '—';
      });
      lines.push(`| ${Math.round(f * 100)} % | ${groups.map((g) => cell(get(g))).join(' | ')} | ${shown.join(' | ')} |`);
    }
    lines.push('');
  }
  const pairs = [...new Set(arms.map((a) => a.retrievalPairs))];
  lines.push(
    `### Pre-training: did each arm learn? (image-to-text retrieval on the same ${pairs.join(' / ')} held-out real images for every arm, against chance)`,
    '',
    '| arm | seed | top-1 | chance | held-out pairs | learned |',
    '|---|---|---|---|---|---|',
  );
  for (const a of arms) lines.push(`| ${a.group} | ${a.seed ?? '—'} | ${a.retrievalTop1.toFixed(3)} | ${a.retrievalChance.toFixed(3)} | ${a.retrievalPairs ?? '—'} | ${a.learned ? 'yes' : '**no: not compared**'} |`);
  lines.push('', '### Stages', '', '| run | seconds | summary |', '|---|---|---|');
  for (const [name, s] of Object.entries(stages)) lines.push(`| ${name} | ${s.seconds.toFixed(0)} | ${Object.entries(s.summary).map(([k, v]) => `${k} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : v}`).join(', ')} |`);
  lines.push('', '### Digests', '', `- dataset (as evaluated): ${results.dataset.sha256} (${results.dataset.images} images)`);
  for (const e of results.encoders) lines.push(`- ${e.name}: ${Object.entries(e.digests).map(([f, d]) => `${f} ${d.slice(0, 16)}…`).join(', ')}`);
  return lines.join('\n');
}
