import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileArtifactStore, type ArtifactStore } from '@medsyn/artifact-store';
import {
  EvaluationConfigError,
  parseEvaluationConfig,
  type BaselineEncoder,
  type EvaluationConfig,
  type TaskName,
} from '@medsyn/config';
import { exportEncoderBundle, writeEncoderBundle, type EncoderSpec } from '@medsyn/encoder-bundle';
import { meanStd, type Box, type EvaluationResults, type ReportSample } from '@medsyn/evaluation-report';
import { resize, type GrayImage } from '@medsyn/imaging';
import type { DenseTrainOptions } from './dense-tasks';
import { cpuBudget } from '@medsyn/training';
import { DenseHeadWorkers, oneAtATime, runDenseJob, type DenseJob, type DenseJobDone } from './dense-workers';
import { importDataset, loadImage, loadMask, type DownstreamDataset, type LabelledImage } from './downstream-datasets';
import { encodeImages, openEncoderBundle, type EncodedImages, type FrozenEncoder } from './encoder';
import { probeScores, trainLinearProbe, type ProbeSet } from './linear-probe';
import { accuracy, aurocPerClass, binaryAccuracy, rocCurve } from './metrics';
import { pngDataUri, sampleGrids } from './report-images';
import { labelFraction, splitIds, type Split } from './splits';
import { datasetDigest, targetsOf, taskSplit } from './task-images';
import { defaultPrompts, zeroShotScores } from './zero-shot';

export interface EvaluationProgress {
  phase: string;
  completed: number;
  total: number;
}

export interface EvaluationOutput {
  results: EvaluationResults;
  /** Split ids per task, and training ids per (task, fraction, seed). */
  splits: unknown;
}

export interface EvaluationOptions {
  onProgress?: (p: EvaluationProgress) => void;
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Where bundle prefixes that are not local folders are read from. */
  store?: ArtifactStore;
  /** The dense heads' variant, for ablations (bench/dense-heads.ts); the defaults are the protocol. */
  denseHeads?: Pick<DenseTrainOptions, 'standardise' | 'decoderNorm' | 'minStepsPerEpoch'>;
  /**
   * Segmentation and detection runs (label fractions x seeds) trained at once on CPU, each in a
   * worker thread with its share of the cores (default: one per core; 1 trains them one by one
   * on this thread with onnxruntime's default threads, as other execution providers always do).
   */
  parallelRuns?: number;
}

type ParsedConfig = ReturnType<typeof parseEvaluationConfig>;
type TrainedTask = Exclude<TaskName, 'zero_shot'>;

/** The dataset as the run evaluates it: each task's images and split, and every image some task uses. */
interface TaskImages {
  dataset: DownstreamDataset;
  perTask: Map<TaskName, { images: LabelledImage[]; split: Split }>;
  used: LabelledImage[];
}

/** One encoder opened, with its outputs for every used image (computed once, reused by every task, fraction and seed). */
interface EncodedDataset {
  name: string;
  encoder: FrozenEncoder;
  encoded: EncodedImages;
  /** The encoder's square input size. */
  size: number;
  /** Each image resized to the input size (the report's samples), and its original size (masks and boxes). */
  resized: Map<string, GrayImage>;
  original: Map<string, { width: number; height: number }>;
}

/** One training run of a task's head: the split, the label fraction's training images, the seed. */
interface HeadInput {
  split: Split;
  train: LabelledImage[];
  seed: number;
  /** The results to draw the report's samples into (the largest fraction's first seed), else undefined. */
  report?: EvaluationResults;
}

/** Segmentation masks or detection boxes at the encoder's input size, by encoded row. */
type DenseTargets =
  { task: 'segmentation'; masks: Uint8Array[] } | { task: 'detection'; boxes: Box[][]; classes: number };

/** What one training run (one task, label fraction and seed) measured. */
interface HeadRun {
  metrics: Record<string, number>;
  bestEpoch?: number;
  steps?: number;
}

/**
 * The comparison: every encoder x task x label fraction x seed on one dataset, with the encoder
 * run once per image and its outputs cached. The split (by patient) is shared by every run;
 * label fractions and head initialisation follow the run's seed. Returns results.json's content
 * and the split ids (splits.json).
 */
export async function runEvaluation(rawConfig: unknown, options: EvaluationOptions = {}): Promise<EvaluationOutput> {
  const config = parseEvaluationConfig(rawConfig);
  const started = Date.now();
  const images = readTaskImages(config);
  const results = emptyResults(config, images);
  const splits = splitsFile(config, images);
  const tally = new RunTally(config, options);
  const dense = denseRunner(config, options);
  try {
    for (const spec of config.encoders) {
      options.signal?.throwIfAborted();
      const encoded = await encodeDataset(spec, config, images, options, results, tally);
      try {
        for (const task of config.tasks)
          if (task === 'zero_shot') await zeroShot(encoded, config, images, results, tally);
          else await trainedHeads(encoded, task, config, images, options, results, tally, dense);
      } finally {
        await encoded.encoder.release();
      }
    }
  } finally {
    await dense.close();
  }
  results.metrics.push(...tally.summaries());
  results.ratios.push(...syntheticRealRatios(config, results));
  results.seconds = (Date.now() - started) / 1000;
  tally.progress('done');
  return { results, splits };
}

/** The dataset, and each task's images and patient-grouped split. */
function readTaskImages(config: ParsedConfig): TaskImages {
  const dataset = importDataset(config.dataset.format, config.dataset.root, config.dataset.options);
  const perTask = new Map<TaskName, { images: LabelledImage[]; split: Split }>();
  for (const task of config.tasks) perTask.set(task, taskSplit(dataset, task, config));
  const used = [...new Map([...perTask.values()].flatMap((t) => t.images.map((i) => [i.id, i] as const))).values()];
  return { dataset, perTask, used };
}

/** results.json before any run: the config, the dataset as evaluated (with its digest), the splits' sizes. */
function emptyResults(config: ParsedConfig, { dataset, perTask, used }: TaskImages): EvaluationResults {
  return {
    format: 'medsyn.evaluation-results/v1',
    created: new Date().toISOString(),
    config,
    dataset: {
      name: dataset.name,
      format: config.dataset.format,
      kind: dataset.kind,
      classes: dataset.classNames,
      box_classes: dataset.boxClassNames,
      images: used.length,
      sha256: datasetDigest(used, dataset.root),
    },
    encoders: [],
    metrics: [],
    ratios: [],
    runs: [],
    skipped: [],
    splits: Object.fromEntries(
      [...perTask].map(([task, t]) => [
        task,
        { train: t.split.train.length, validation: t.split.validation.length, test: t.split.test.length },
      ]),
    ),
    roc: {},
    grids: sampleGrids(config.sample_grids ?? {}),
    samples: {},
    seconds: 0,
  };
}

/** splits.json: each task's split ids, and the training ids of each label fraction and seed. */
function splitsFile(config: ParsedConfig, { perTask }: TaskImages): Record<string, unknown> {
  const splits: Record<string, unknown> = { split_seed: config.split_seed };
  for (const [task, t] of perTask) {
    const fractions: Record<string, Record<string, string[]>> = {};
    for (const f of config.label_fractions)
      fractions[String(f)] = Object.fromEntries(
        config.seeds.map((s) => [String(s), labelFraction(t.split.train, f, s).map((i) => i.id)]),
      );
    splits[task] = { ...splitIds(t.split), label_fractions: fractions };
  }
  return splits;
}

/** Opens an encoder (a bundle, or a random-init baseline) and runs it once over every used image. */
async function encodeDataset(
  spec: EvaluationConfig['encoders'][number],
  config: ParsedConfig,
  { dataset, used }: TaskImages,
  options: EvaluationOptions,
  results: EvaluationResults,
  tally: RunTally,
): Promise<EncodedDataset> {
  const encoder = await openEncoderBundle(
    spec.bundle ? bundleLocation(spec.bundle, options.store) : await baselineBundle(spec.baseline!),
    { executionProvider: config.execution_provider },
  );
  try {
    const size = encoder.manifest.image.input.size;
    const needMaps = config.tasks.includes('segmentation') || config.tasks.includes('detection');
    tally.progress(`${spec.name}: encoding ${used.length} images`);
    const t0 = Date.now();
    // Decoded, resized images are cached for the report and masks; the encoder runs once per image.
    const resized = new Map<string, GrayImage>();
    const original = new Map<string, { width: number; height: number }>();
    const encoded = await encodeImages(
      encoder,
      used.map((image) => ({
        id: image.id,
        load: () => {
          const full = loadImage(image, dataset.root);
          original.set(image.id, { width: full.width, height: full.height });
          const small = resize(full, size, size);
          resized.set(image.id, small);
          return small;
        },
      })),
      { withMaps: needMaps, batchSize: 16 },
    );
    const encodeSeconds = (Date.now() - t0) / 1000;
    results.encoders.push({
      name: spec.name,
      pretraining_data: spec.pretraining_data ?? 'unknown',
      method: encoder.manifest.method,
      architecture: encoder.manifest.image.architecture,
      input_size: size,
      digests: encoder.digests,
      encode_seconds: encodeSeconds,
    });
    tally.log(`${spec.name}: encoded ${used.length} images in ${encodeSeconds.toFixed(1)} s`);
    results.samples[spec.name] = {};
    return { name: spec.name, encoder, encoded, size, resized, original };
  } catch (error) {
    await encoder.release();
    throw error;
  }
}

/** Zero-shot classification of the test images by prompt pairs: no training, so every seed gets the same values. */
async function zeroShot(
  { name, encoder, encoded }: EncodedDataset,
  config: ParsedConfig,
  { dataset, perTask }: TaskImages,
  results: EvaluationResults,
  tally: RunTally,
): Promise<void> {
  const task = 'zero_shot';
  const { split } = perTask.get(task)!;
  tally.progress(`${name}: zero-shot`);
  const t1 = Date.now();
  if (!encoded.embeddings || !encoder.text) {
    // An image-only encoder (a baseline, an ImageNet export) has no zero-shot row; the others still do.
    const reason = `encoder "${name}" has no ${encoder.text ? 'image embedding' : 'text encoder'}`;
    results.skipped.push({ encoder: name, task, reason });
    tally.log(`${name}: zero-shot skipped (${reason})`);
    tally.runDone();
    return;
  }
  const D = encoded.embeddingDim!;
  const emb = new Float32Array(split.test.length * D);
  split.test.forEach((image, k) => {
    const r = encoded.index.get(image.id)!;
    emb.set(encoded.embeddings!.subarray(r * D, (r + 1) * D), k * D);
  });
  const scores = await zeroShotScores(encoder, emb, split.test.length, dataset.classNames, {
    ...defaultPrompts(dataset.classNames),
    ...config.prompts,
  });
  const metrics = classificationMetrics(dataset, targetsOf(dataset, split.test), scores, split.test.length);
  for (const seed of config.seeds) {
    results.runs.push({
      encoder: name,
      task,
      label_fraction: 0,
      seed,
      train_images: 0,
      seconds: (Date.now() - t1) / 1000,
      metrics,
    });
    tally.record(name, task, 0, metrics);
  }
  tally.runDone();
  tally.progress(`${name}: zero-shot done`);
}

/**
 * A task with a trained head, once per label fraction and seed. The largest fraction's first seed
 * also gives the report its ROC curves and its segmentation and detection samples.
 */
async function trainedHeads(
  enc: EncodedDataset,
  task: TrainedTask,
  config: ParsedConfig,
  images: TaskImages,
  options: EvaluationOptions,
  results: EvaluationResults,
  tally: RunTally,
  denseRunner: DenseRunner,
): Promise<void> {
  const { split } = images.perTask.get(task)!;
  const dense = task === 'classification' ? undefined : denseTargets(enc, task, images);
  const largest = Math.max(...config.label_fractions);
  const heads = config.label_fractions.flatMap((fraction) =>
    config.seeds.map((seed, seedIndex): HeadInput & { fraction: number } => ({
      fraction,
      split,
      train: labelFraction(split.train, fraction, seed),
      seed,
      report: fraction === largest && seedIndex === 0 ? results : undefined,
    })),
  );
  const runOf = async (head: HeadInput): Promise<HeadRun & { seconds: number }> => {
    if (dense) return denseRun(enc, dense, head, config, options, denseRunner);
    const started = Date.now();
    return { ...(await classificationRun(enc, images.dataset, head, config)), seconds: (Date.now() - started) / 1000 };
  };
  // Dense runs all start now (the runner queues them for its workers); a probe takes milliseconds
  // and runs when its turn comes. Results are recorded in the config's order either way.
  const started = dense ? heads.map(runOf) : [];
  for (const p of started) p.catch(() => {}); // a failure is thrown below, in order
  for (const [i, head] of heads.entries()) {
    options.signal?.throwIfAborted();
    const { fraction, seed, train } = head;
    tally.progress(`${enc.name}: ${task} ${fraction * 100}% seed ${seed}`);
    const run = await (started[i] ?? runOf(head));
    results.runs.push({
      encoder: enc.name,
      task,
      label_fraction: fraction,
      seed,
      train_images: train.length,
      best_epoch: run.bestEpoch,
      steps: run.steps,
      seconds: run.seconds,
      metrics: run.metrics,
    });
    tally.record(enc.name, task, fraction, run.metrics);
    tally.log(
      `${enc.name} ${task} ${fraction * 100}% seed ${seed}: ${Object.entries(run.metrics)
        .filter(([k]) => !k.includes('/'))
        .map(([k, v]) => `${k} ${v.toFixed(4)}`)
        .join(', ')} (${run.seconds.toFixed(1)} s)`,
    );
    tally.runDone();
  }
}

/** A linear probe on the pooled features; `report` (the sampled run) also gets its ROC curves. */
async function classificationRun(
  { name, encoded }: EncodedDataset,
  dataset: DownstreamDataset,
  { split, train, report }: HeadInput,
  config: ParsedConfig,
): Promise<HeadRun> {
  const set = (list: LabelledImage[]): ProbeSet => ({
    features: featuresOf(encoded, list),
    targets: targetsOf(dataset, list),
    n: list.length,
  });
  const test = set(split.test);
  const probe = await trainLinearProbe(set(train), set(split.validation), encoded.featureDim, {
    kind: dataset.kind,
    classes: dataset.classNames.length,
    epochs: config.epochs?.classification,
    executionProvider: config.execution_provider,
  });
  const scores = probeScores(probe, test.features, test.n);
  const metrics = classificationMetrics(dataset, test.targets, scores, test.n);
  if (report) {
    const C = dataset.classNames.length;
    report.roc[name] = dataset.classNames.map((className, c) => {
      const y = Array.from({ length: test.n }, (_, i) => test.targets[i * C + c]!);
      const s = Array.from({ length: test.n }, (_, i) => scores[i * C + c]!);
      return { className, ...rocCurve(y, s), auroc: metrics[`auroc/${className}`]! };
    });
  }
  return { metrics, bestEpoch: probe.bestEpoch, steps: probe.steps };
}

/** Segmentation masks or detection boxes at the encoder's input size, by encoded row (computed once per encoder). */
function denseTargets(
  { encoded, size, original }: EncodedDataset,
  task: 'segmentation' | 'detection',
  { dataset, perTask, used }: TaskImages,
): DenseTargets {
  const images = perTask.get(task)!.images;
  if (task === 'segmentation') {
    // One shared block (the dense heads' worker threads read it without a copy), a view per row.
    const block = new Uint8Array(new SharedArrayBuffer(used.length * size * size));
    const masks = Array<Uint8Array>(used.length);
    for (const image of images) {
      const { width, height } = original.get(image.id)!;
      const small = resize(loadMask(image, width, height, dataset.root), size, size);
      const row = encoded.index.get(image.id)!;
      const mask = block.subarray(row * size * size, (row + 1) * size * size);
      small.data.forEach((v, i) => (mask[i] = v >= 0.5 ? 1 : 0));
      masks[row] = mask;
    }
    return { task, masks };
  }
  const boxes = Array<Box[]>(used.length);
  for (const image of images) {
    const { width, height } = original.get(image.id)!;
    boxes[encoded.index.get(image.id)!] = image.boxes!.map((b) => ({
      x: (b.x * size) / width,
      y: (b.y * size) / height,
      width: (b.width * size) / width,
      height: (b.height * size) / height,
      label: b.label,
    }));
  }
  return { task, boxes, classes: dataset.boxClassNames?.length ?? 1 };
}

/** A U-Net decoder (segmentation) or an FCOS head (detection) on the feature maps; `report` also gets test samples. */
async function denseRun(
  enc: EncodedDataset,
  targets: DenseTargets,
  { split, train, seed, report }: HeadInput,
  config: ParsedConfig,
  options: EvaluationOptions,
  runner: DenseRunner,
): Promise<HeadRun & { seconds: number }> {
  const { encoded, size } = enc;
  const rowsOf = (list: LabelledImage[]) => list.map((i) => encoded.index.get(i.id)!);
  const rows = { train: rowsOf(train), validation: rowsOf(split.validation), test: rowsOf(split.test) };
  const common = {
    ...options.denseHeads,
    seed,
    executionProvider: config.execution_provider,
    epochs: config.epochs?.[targets.task],
  };
  const samples = (extra: (k: number) => Partial<ReportSample>): ReportSample[] =>
    split.test.slice(0, config.report_samples).map((image, k) => ({
      id: image.id,
      size,
      image: pngDataUri(size, enc.resized.get(image.id)!.data),
      ...extra(k),
    }));
  const maps = encoded.maps!;
  if (targets.task === 'segmentation') {
    const { masks } = targets;
    const { result, seconds } = await runner.run({ task: 'segmentation', maps, masks, size, rows, options: common });
    if (report)
      report.samples[enc.name]!.segmentation = samples((k) => ({
        truthMask: pngDataUri(size, masks[rows.test[k]!]!),
        predictedMask: pngDataUri(size, result.predictions[k]!),
      }));
    return { metrics: { dice: result.dice }, bestEpoch: result.bestEpoch, steps: result.steps, seconds };
  }
  const { boxes, classes } = targets;
  const { result, seconds } = await runner.run({ task: 'detection', maps, boxes, classes, rows, options: common });
  if (report)
    report.samples[enc.name]!.detection = samples((k) => ({
      truthBoxes: boxes[rows.test[k]!],
      predictedBoxes: result.detections[k]!.slice(0, 10),
    }));
  return {
    metrics: { map_40_75: result.map_40_75, map_50: result.map_50 },
    bestEpoch: result.bestEpoch,
    steps: result.steps,
    seconds,
  };
}

/** Where dense heads train: one by one on this thread, or in worker threads (EvaluationOptions.parallelRuns). */
interface DenseRunner {
  run<J extends DenseJob>(job: J): Promise<DenseJobDone<J>>;
  close(): Promise<void>;
}

function denseRunner(config: ParsedConfig, options: EvaluationOptions): DenseRunner {
  const cores = cpuBudget();
  const workers = Math.min(options.parallelRuns ?? cores, config.label_fractions.length * config.seeds.length);
  const hasDense = config.tasks.some((t) => t === 'segmentation' || t === 'detection');
  if ((config.execution_provider ?? 'cpu') !== 'cpu' || workers < 2 || !hasDense)
    return { run: oneAtATime(runDenseJob), close: async () => {} };
  const pool = new DenseHeadWorkers(workers);
  const intraOpThreads = Math.max(1, Math.floor(cores / workers));
  return {
    run: (job) => pool.run({ ...job, options: { ...job.options, intraOpThreads } }),
    close: () => pool.close(),
  };
}

function featuresOf(encoded: EncodedImages, list: LabelledImage[]): Float32Array {
  const F = encoded.featureDim;
  const out = new Float32Array(list.length * F);
  list.forEach((image, k) => {
    const r = encoded.index.get(image.id)!;
    out.set(encoded.features.subarray(r * F, (r + 1) * F), k * F);
  });
  return out;
}

function classificationMetrics(
  dataset: DownstreamDataset,
  targets: Float32Array,
  scores: Float32Array,
  n: number,
): Record<string, number> {
  const C = dataset.classNames.length;
  const auc = aurocPerClass(targets, scores, C);
  const metrics: Record<string, number> = { auroc_macro: auc.macro };
  dataset.classNames.forEach((name, c) => (metrics[`auroc/${name}`] = auc.perClass[c]!));
  if (dataset.kind === 'multi-class') {
    const truth = Array.from({ length: n }, (_, i) => targets.subarray(i * C, (i + 1) * C).indexOf(1));
    metrics.accuracy = accuracy(truth, scores, C);
  } else metrics.accuracy = binaryAccuracy(targets, scores);
  return metrics;
}

/**
 * synthetic/real per method: each synthetic encoder against the real one pre-trained the same way
 * (the same name with "real" for "synthetic", as a pipeline names its seeds' arms; else the same method).
 */
function syntheticRealRatios(config: ParsedConfig, results: EvaluationResults): EvaluationResults['ratios'] {
  const ratios: EvaluationResults['ratios'] = [];
  const methodOf = (name: string) => results.encoders.find((e) => e.name === name)?.method;
  const reals = config.encoders.filter((e) => e.pretraining_data === 'real');
  for (const synthetic of config.encoders.filter((e) => e.pretraining_data === 'synthetic')) {
    const real =
      reals.find((e) => e.name === synthetic.name.replace('synthetic', 'real')) ??
      reals.find((e) => methodOf(e.name) === methodOf(synthetic.name)) ??
      reals[0];
    if (!real) continue;
    for (const m of results.metrics.filter((x) => x.encoder === synthetic.name)) {
      const r = results.metrics.find(
        (x) =>
          x.encoder === real.name &&
          x.task === m.task &&
          x.label_fraction === m.label_fraction &&
          x.metric === m.metric,
      );
      if (r)
        ratios.push({
          task: m.task,
          label_fraction: m.label_fraction,
          metric: m.metric,
          synthetic: synthetic.name,
          real: real.name,
          ratio: m.mean / r.mean,
        });
    }
  }
  return ratios;
}

/** The run's progress (runs done of all) and each metric's values over seeds, for the summaries. */
class RunTally {
  private done = 0;
  private readonly total: number;
  private readonly values = new Map<string, number[]>();
  readonly log: (line: string) => void;

  constructor(
    config: ParsedConfig,
    private readonly options: EvaluationOptions,
  ) {
    const trainingTasks = config.tasks.filter((t) => t !== 'zero_shot');
    this.total =
      config.encoders.length *
      (trainingTasks.length * config.label_fractions.length * config.seeds.length +
        (config.tasks.includes('zero_shot') ? 1 : 0));
    this.log = options.log ?? (() => {});
  }

  progress(phase: string): void {
    this.options.onProgress?.({ phase, completed: this.done, total: this.total });
  }

  runDone(): void {
    this.done++;
  }

  record(encoder: string, task: TaskName, fraction: number, metrics: Record<string, number>): void {
    for (const [metric, v] of Object.entries(metrics)) {
      const key = JSON.stringify([encoder, task, fraction, metric]);
      this.values.set(key, [...(this.values.get(key) ?? []), v]);
    }
  }

  /** Mean ± sample std of each metric over seeds, per encoder, task and label fraction. */
  summaries(): EvaluationResults['metrics'] {
    return [...this.values].map(([key, perSeed]) => {
      const [encoder, task, fraction, metric] = JSON.parse(key) as [string, TaskName, number, string];
      return { encoder, task, label_fraction: fraction, metric, ...meanStd(perSeed), per_seed: perSeed };
    });
  }
}

/** A bundle given as a local folder (or file:// URI), else a prefix in the store. */
function bundleLocation(bundle: string, store?: ArtifactStore): string | { store: ArtifactStore; prefix: string } {
  if (bundle.startsWith('file://')) return fileURLToPath(bundle);
  if (!store || fs.existsSync(bundle)) return bundle;
  return { store, prefix: bundle };
}

/** Writes a seeded random-init bundle to a temporary folder (removed at exit) and returns its path. */
async function baselineBundle(baseline: BaselineEncoder): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medsyn-baseline-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const spec: EncoderSpec = {
    image: { architecture: baseline.architecture, size: baseline.size, width: baseline.width },
  };
  try {
    await writeEncoderBundle(
      new FileArtifactStore(dir),
      'bundle',
      exportEncoderBundle(spec, { method: 'random', seed: baseline.seed ?? 0 }),
    );
  } catch (error) {
    throw new EvaluationConfigError('encoders.baseline', (error as Error).message);
  }
  return path.join(dir, 'bundle');
}

/** Writes results.json and splits.json (and the report, when given) into a folder. */
export function writeEvaluationOutput(
  dir: string,
  output: EvaluationOutput,
  reportHtml?: string,
): Record<string, string> {
  fs.mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {
    'results.json': JSON.stringify(output.results, null, 1),
    'splits.json': JSON.stringify(output.splits),
  };
  if (reportHtml !== undefined) files['report.html'] = reportHtml;
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return Object.fromEntries(Object.keys(files).map((name) => [name, path.join(dir, name)]));
}
