import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileArtifactStore, type ArtifactStore } from '@medsyn/artifact-store';
import { exportEncoderBundle, writeEncoderBundle, type EncoderSpec } from '@medsyn/encoder-bundle';
import { centerCropSquare, encodeGrayPng, grayImage, resize, type GrayImage } from '@medsyn/imaging';
import { EvaluationConfigError, parseEvaluationConfig, type BaselineEncoder, type TaskName } from '@medsyn/config';
import { meanStd, type Box, type EvaluationResults } from '@medsyn/evaluation-report';
import {
  importDataset,
  loadImage,
  loadMask,
  readDatasetFile,
  type DownstreamDataset,
  type LabelledImage,
} from './downstream-datasets';
import { trainDetection, trainSegmentation, type DenseTrainOptions } from './dense-tasks';
import { encodeImages, openEncoderBundle, type EncodedImages } from './encoder';
import { probeScores, trainLinearProbe, type ProbeSet } from './linear-probe';
import { accuracy, aurocPerClass, binaryAccuracy, rocCurve } from './metrics';
import { labelFraction, splitByPatient, splitIds, type Split } from './splits';
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

/** A square gray image (values in [0, 1]) as an 8-bit PNG data URI, for self-contained reports. */
export function pngDataUri(size: number, values: ArrayLike<number>): string {
  const png = encodeGrayPng(grayImage(size, size, Float32Array.from(values)));
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

const hex = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex');

function subsample(images: LabelledImage[], max: number | undefined, seed: number): LabelledImage[] {
  if (!max || images.length <= max) return images;
  // Deterministic by id hash, independent of order: the same ids for the same seed.
  return [...images]
    .sort((a, b) => hex(`${seed}:${a.id}`).localeCompare(hex(`${seed}:${b.id}`)))
    .slice(0, max)
    .sort((a, b) => images.indexOf(a) - images.indexOf(b));
}

/** The images a task uses and their patient-grouped split: one place, so held-out sets agree. */
function taskSplit(
  dataset: DownstreamDataset,
  task: TaskName,
  config: { max_images?: number; split_seed: number },
): { images: LabelledImage[]; split: Split } {
  const images = subsample(eligible(dataset, task), config.max_images, config.split_seed);
  if (images.length === 0)
    throw new EvaluationConfigError(
      'tasks',
      `the ${dataset.name} dataset has no images for ${task} (no ${task === 'segmentation' ? 'masks' : task === 'detection' ? 'boxes' : 'labels'})`,
    );
  const split = splitByPatient(dataset, images, { seed: config.split_seed });
  if (split.test.length === 0 || split.train.length === 0)
    throw new EvaluationConfigError('dataset', `too few images for a ${task} split (${images.length})`);
  return { images, split };
}

/**
 * Ids of every image of a patient that some task tests on (for this split seed and image cap):
 * what a generator or a pre-training run must leave out so that the evaluation never tests on
 * an image, or a patient, it was trained on.
 */
export function heldOutImageIds(
  dataset: DownstreamDataset,
  options: { tasks: TaskName[]; split_seed: number; max_images?: number },
): Set<string> {
  const patients = new Set<string>();
  for (const task of options.tasks)
    for (const image of taskSplit(dataset, task, options).split.test) patients.add(image.patient ?? image.id);
  return new Set(dataset.images.filter((i) => patients.has(i.patient ?? i.id)).map((i) => i.id));
}

/** Images each task can use: labels for classification and zero-shot, masks, boxes. */
function eligible(dataset: DownstreamDataset, task: TaskName): LabelledImage[] {
  switch (task) {
    case 'classification':
    case 'zero_shot':
      return dataset.images.filter((i) => i.labels !== undefined || (i.classIndex !== undefined && i.classIndex >= 0));
    case 'segmentation':
      return dataset.images.filter((i) => i.mask);
    case 'detection':
      return dataset.images.filter((i) => i.boxes && i.boxes.length > 0);
  }
}

/** Digest of the dataset as evaluated: each image's id, file sha256 and annotations. */
function datasetDigest(images: LabelledImage[], root: string | undefined): string {
  const h = createHash('sha256');
  for (const image of [...images].sort((a, b) => a.id.localeCompare(b.id))) {
    const bytes = readDatasetFile(image.path, `image ${image.id}`, root);
    const mask =
      image.mask?.kind === 'png'
        ? hex(readDatasetFile(image.mask.path, `mask of ${image.id}`, root))
        : (image.mask?.runs ?? null);
    h.update(
      JSON.stringify([image.id, hex(bytes), image.labels ?? image.classIndex ?? null, image.boxes ?? null, mask]),
    );
  }
  return h.digest('hex');
}

function targetsOf(dataset: DownstreamDataset, images: LabelledImage[]): Float32Array {
  const C = dataset.classNames.length;
  const out = new Float32Array(images.length * C);
  images.forEach((image, i) => {
    if (dataset.kind === 'multi-class') out[i * C + image.classIndex!] = 1;
    else out.set(image.labels!, i * C);
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
 * The comparison: every encoder x task x label fraction x seed on one dataset, with the encoder
 * run once per image and its outputs cached. The split (by patient) is shared by every run;
 * label fractions and head initialisation follow the run's seed. Returns results.json's content
 * and the split ids (splits.json).
 */
export async function runEvaluation(
  rawConfig: unknown,
  options: {
    onProgress?: (p: EvaluationProgress) => void;
    signal?: AbortSignal;
    log?: (line: string) => void;
    /** Where bundle prefixes that are not local folders are read from. */
    store?: ArtifactStore;
    /** The dense heads' variant, for ablations (bench/dense-heads.ts); the defaults are the protocol. */
    denseHeads?: Pick<DenseTrainOptions, 'standardise' | 'decoderNorm' | 'minStepsPerEpoch'>;
  } = {},
): Promise<EvaluationOutput> {
  const config = parseEvaluationConfig(rawConfig);
  const started = Date.now();
  const log = options.log ?? (() => {});
  const dataset = importDataset(config.dataset.format, config.dataset.root, config.dataset.options);
  const perTask = new Map<TaskName, { images: LabelledImage[]; split: Split }>();
  for (const task of config.tasks) perTask.set(task, taskSplit(dataset, task, config));
  const used = [...new Map([...perTask.values()].flatMap((t) => t.images.map((i) => [i.id, i] as const))).values()];
  const results: EvaluationResults = {
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
  const splits: Record<string, unknown> = { split_seed: config.split_seed };
  for (const [task, t] of perTask) {
    const fractions: Record<string, Record<string, string[]>> = {};
    for (const f of config.label_fractions)
      fractions[String(f)] = Object.fromEntries(
        config.seeds.map((s) => [String(s), labelFraction(t.split.train, f, s).map((i) => i.id)]),
      );
    splits[task] = { ...splitIds(t.split), label_fractions: fractions };
  }

  const trainingTasks = config.tasks.filter((t) => t !== 'zero_shot');
  const totalRuns =
    config.encoders.length *
    (trainingTasks.length * config.label_fractions.length * config.seeds.length +
      (config.tasks.includes('zero_shot') ? 1 : 0));
  let doneRuns = 0;
  const progress = (phase: string) => options.onProgress?.({ phase, completed: doneRuns, total: totalRuns });
  const values = new Map<string, number[]>();
  const record = (encoder: string, task: TaskName, fraction: number, metrics: Record<string, number>) => {
    for (const [metric, v] of Object.entries(metrics)) {
      const key = JSON.stringify([encoder, task, fraction, metric]);
      values.set(key, [...(values.get(key) ?? []), v]);
    }
  };
  const largest = Math.max(...config.label_fractions);

  for (const spec of config.encoders) {
    options.signal?.throwIfAborted();
    const encoder = await openEncoderBundle(
      spec.bundle ? bundleLocation(spec.bundle, options.store) : await baselineBundle(spec.baseline!),
      { executionProvider: config.execution_provider },
    );
    try {
      const size = encoder.manifest.image.input.size;
      const needMaps = config.tasks.includes('segmentation') || config.tasks.includes('detection');
      progress(`${spec.name}: encoding ${used.length} images`);
      const t0 = Date.now();
      // Decoded, resized images are cached for the report and masks; the encoder runs once per image.
      const resized = new Map<string, GrayImage>();
      const original = new Map<string, { width: number; height: number }>();
      const encoded: EncodedImages = await encodeImages(
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
      log(`${spec.name}: encoded ${used.length} images in ${encodeSeconds.toFixed(1)} s`);
      const rowsOf = (list: LabelledImage[]) => list.map((i) => encoded.index.get(i.id)!);
      const featuresOf = (list: LabelledImage[]) => {
        const F = encoded.featureDim;
        const out = new Float32Array(list.length * F);
        list.forEach((image, k) => {
          const r = encoded.index.get(image.id)!;
          out.set(encoded.features.subarray(r * F, (r + 1) * F), k * F);
        });
        return out;
      };
      results.samples[spec.name] = {};

      for (const task of config.tasks) {
        const { split } = perTask.get(task)!;
        if (task === 'zero_shot') {
          progress(`${spec.name}: zero-shot`);
          const t1 = Date.now();
          if (!encoded.embeddings || !encoder.text) {
            // An image-only encoder (a baseline, an ImageNet export) has no zero-shot row; the others still do.
            const reason = `encoder "${spec.name}" has no ${encoder.text ? 'image embedding' : 'text encoder'}`;
            results.skipped.push({ encoder: spec.name, task, reason });
            log(`${spec.name}: zero-shot skipped (${reason})`);
            doneRuns++;
            continue;
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
              encoder: spec.name,
              task,
              label_fraction: 0,
              seed,
              train_images: 0,
              seconds: (Date.now() - t1) / 1000,
              metrics,
            });
            record(spec.name, task, 0, metrics);
          }
          doneRuns++;
          progress(`${spec.name}: zero-shot done`);
          continue;
        }
        // Dense targets at the encoder's input size, computed once per encoder.
        const masks =
          task === 'segmentation'
            ? new Map(
                perTask.get(task)!.images.map((image) => {
                  const { width, height } = original.get(image.id)!;
                  const small = resize(loadMask(image, width, height, dataset.root), size, size);
                  return [
                    encoded.index.get(image.id)!,
                    Uint8Array.from(small.data, (v) => (v >= 0.5 ? 1 : 0)),
                  ] as const;
                }),
              )
            : undefined;
        const boxes =
          task === 'detection'
            ? new Map(
                perTask.get(task)!.images.map((image) => {
                  const { width, height } = original.get(image.id)!;
                  return [
                    encoded.index.get(image.id)!,
                    image.boxes!.map((b) => ({
                      x: (b.x * size) / width,
                      y: (b.y * size) / height,
                      width: (b.width * size) / width,
                      height: (b.height * size) / height,
                      label: b.label,
                    })),
                  ] as const;
                }),
              )
            : undefined;
        for (const fraction of config.label_fractions) {
          for (const [seedIndex, seed] of config.seeds.entries()) {
            options.signal?.throwIfAborted();
            progress(`${spec.name}: ${task} ${fraction * 100}% seed ${seed}`);
            const t1 = Date.now();
            const train = labelFraction(split.train, fraction, seed);
            let metrics: Record<string, number>;
            let bestEpoch: number | undefined;
            let steps: number | undefined;
            const sample = fraction === largest && seedIndex === 0;
            if (task === 'classification') {
              const set = (list: LabelledImage[]): ProbeSet => ({
                features: featuresOf(list),
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
              metrics = classificationMetrics(dataset, test.targets, scores, test.n);
              bestEpoch = probe.bestEpoch;
              steps = probe.steps;
              if (sample) {
                results.roc[spec.name] = dataset.classNames.map((className, c) => {
                  const C = dataset.classNames.length;
                  const y = Array.from({ length: test.n }, (_, i) => test.targets[i * C + c]!);
                  const s = Array.from({ length: test.n }, (_, i) => scores[i * C + c]!);
                  return { className, ...rocCurve(y, s), auroc: metrics[`auroc/${className}`]! };
                });
              }
            } else {
              const rows = { train: rowsOf(train), validation: rowsOf(split.validation), test: rowsOf(split.test) };
              const common = {
                ...options.denseHeads,
                seed,
                executionProvider: config.execution_provider,
                epochs: config.epochs?.[task],
              };
              if (task === 'segmentation') {
                const dense = Array<Uint8Array>(used.length);
                for (const [r, m] of masks!) dense[r] = m;
                const result = await trainSegmentation(encoded.maps!, dense, size, rows, common);
                metrics = { dice: result.dice };
                ({ bestEpoch, steps } = result);
                if (sample) {
                  results.samples[spec.name]!.segmentation = split.test
                    .slice(0, config.report_samples)
                    .map((image, k) => ({
                      id: image.id,
                      size,
                      image: pngDataUri(size, resized.get(image.id)!.data),
                      truthMask: pngDataUri(size, masks!.get(rows.test[k]!)!),
                      predictedMask: pngDataUri(size, result.predictions[k]!),
                    }));
                }
              } else {
                const dense = Array<Box[]>(used.length);
                for (const [r, b] of boxes!) dense[r] = b;
                const result = await trainDetection(
                  encoded.maps!,
                  dense,
                  dataset.boxClassNames?.length ?? 1,
                  rows,
                  common,
                );
                metrics = { map_40_75: result.map_40_75, map_50: result.map_50 };
                ({ bestEpoch, steps } = result);
                if (sample) {
                  results.samples[spec.name]!.detection = split.test
                    .slice(0, config.report_samples)
                    .map((image, k) => ({
                      id: image.id,
                      size,
                      image: pngDataUri(size, resized.get(image.id)!.data),
                      truthBoxes: dense[rows.test[k]!],
                      predictedBoxes: result.detections[k]!.slice(0, 10),
                    }));
                }
              }
            }
            const seconds = (Date.now() - t1) / 1000;
            results.runs.push({
              encoder: spec.name,
              task,
              label_fraction: fraction,
              seed,
              train_images: train.length,
              best_epoch: bestEpoch,
              steps,
              seconds,
              metrics,
            });
            record(spec.name, task, fraction, metrics);
            log(
              `${spec.name} ${task} ${fraction * 100}% seed ${seed}: ${Object.entries(metrics)
                .filter(([k]) => !k.includes('/'))
                .map(([k, v]) => `${k} ${v.toFixed(4)}`)
                .join(', ')} (${seconds.toFixed(1)} s)`,
            );
            doneRuns++;
          }
        }
      }
    } finally {
      await encoder.release();
    }
  }

  for (const [key, perSeed] of values) {
    const [encoder, task, fraction, metric] = JSON.parse(key) as [string, TaskName, number, string];
    results.metrics.push({ encoder, task, label_fraction: fraction, metric, ...meanStd(perSeed), per_seed: perSeed });
  }
  // synthetic/real per method: each synthetic encoder against the real one pre-trained the same way
  // (the same name with "real" for "synthetic", as a pipeline names its seeds' arms; else the same method).
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
        results.ratios.push({
          task: m.task,
          label_fraction: m.label_fraction,
          metric: m.metric,
          synthetic: synthetic.name,
          real: real.name,
          ratio: m.mean / r.mean,
        });
    }
  }
  results.seconds = (Date.now() - started) / 1000;
  progress('done');
  return { results, splits };
}

/** The first images (by name) of each sample-grid folder, centre-cropped to 96 px. */
function sampleGrids(folders: Record<string, string>, count = 8): EvaluationResults['grids'] {
  const grids: EvaluationResults['grids'] = {};
  for (const [name, folder] of Object.entries(folders)) {
    if (!fs.existsSync(folder)) throw new EvaluationConfigError(`sample_grids.${name}`, `folder not found: ${folder}`);
    const files = fs
      .readdirSync(folder)
      .filter((f) => /\.(png|jpe?g|dcm)$/i.test(f))
      .sort()
      .slice(0, count);
    grids[name] = files.map((file) => ({
      file,
      png: pngDataUri(96, centerCropSquare(loadImage({ id: file, path: path.join(folder, file) }), 96).data),
    }));
  }
  return grids;
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
