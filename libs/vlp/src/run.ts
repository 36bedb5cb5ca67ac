import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import {
  getBuffer,
  keyOf,
  putJsonl,
  readJsonl,
  type ArtifactRef,
  type ArtifactStore,
  type DigestClaim,
} from '@medsyn/artifact-store';
import type { LoadedPairs, PairRecord, SkippedRecord } from '@medsyn/dataset';
import {
  BUNDLE_FILES,
  SCOPES,
  exportEncoderBundle,
  writeEncoderBundle,
  type EncoderBundle,
  type EncoderSpec,
} from '@medsyn/encoder-bundle';
import { centerCropSquare, decodeImage, normalizeInto } from '@medsyn/imaging';
import { decodeModel, fromTensorProto, type Tensor } from '@medsyn/onnx-graph';
import {
  Trainer,
  buildTrainingStep,
  decodeSafetensors,
  encodeSafetensors,
  type OptimizerConfig,
} from '@medsyn/training';
import { WordPieceError, WordPieceTokenizer } from '@medsyn/wordpiece';
import { PretrainingConfigError, configDigest, type PretrainingConfig } from '@medsyn/config';
import { encoderSpecOf } from './encoder-spec';
import {
  PairBatchLoader,
  Prefetcher,
  WorkerPrefetcher,
  loadPairManifests,
  loadRetrievalPairs,
  splitPairs,
  tokenizeRecords,
  withoutHeldOut,
  type DataPosition,
  type TokenizedReports,
} from './data';
import { vlpObjective } from './model';
import { learningRateAt } from './schedule';

/** Output layout under a run's prefix. */
export const RUN_FILES = {
  config: 'config.json',
  log: 'train_log.jsonl',
  latest: 'checkpoints/latest.json',
  result: 'result.json',
  vocab: 'tokenizer/vocab.txt',
  bundle: 'encoder',
} as const;

export interface PretrainingProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  epochs: number;
  loss: number;
  parts: Record<string, number>;
  learningRate: number;
  samplesPerSecond: number;
  stepSeconds: number;
  etaSeconds: number;
  /** Share of wall time since the start of this process spent waiting for data. */
  dataWaitFraction: number;
  skippedRecords: number;
}

/** One line of train_log.jsonl. */
export interface LogEntry {
  step: number;
  epoch: number;
  loss: number;
  parts: Record<string, number>;
  lr: number;
  grad_norm: number;
  samples_per_s: number;
  step_s: number;
  data_wait_s: number;
}

export interface PretrainingResult {
  prefix: string;
  bundlePrefix: string;
  refs: {
    imageEncoder: ArtifactRef;
    textEncoder: ArtifactRef;
    tokenizer: ArtifactRef;
    encoderManifest: ArtifactRef;
    config: ArtifactRef;
    trainingLog: ArtifactRef;
    checkpoint: ArtifactRef;
  };
  lineage: { inputs: DigestClaim[]; configSha256: string; codeVersion: string };
  steps: number;
  finalLoss: number;
  /** Held-out image->text top-1 retrieval (and its chance level), when there is a validation set. */
  retrieval?: { top1: number; chance: number; pairs: number };
  skippedRecords: number;
  skippedReasons: Record<string, number>;
  samplesPerSecond: number;
  dataWaitFraction: number;
  resumedFromStep: number;
}

export interface RunPretrainingOptions {
  store: ArtifactStore;
  config: PretrainingConfig;
  /** Store prefix for checkpoints and outputs. */
  prefix: string;
  onProgress?: (progress: PretrainingProgress) => void;
  /** Cancellation: the run writes a checkpoint and stops with PretrainingCancelledError. */
  signal?: AbortSignal;
  /** Abandon the run after this many steps in this call, writing nothing more (tests simulate a killed process). */
  abandonAfterSteps?: number;
  intraOpThreads?: number;
  /**
   * Read, decode and augment images on a worker thread while onnxruntime computes (default);
   * false does it on the training thread, between steps. The batches are the same either way.
   */
  dataWorker?: boolean;
  /** Recorded in the lineage (e.g. a git commit). */
  codeVersion?: string;
}

export class PretrainingCancelledError extends Error {
  override readonly name = 'PretrainingCancelledError';
}

/** The run was abandoned on purpose (abandonAfterSteps). */
export class PretrainingAbandonedError extends Error {
  override readonly name = 'PretrainingAbandonedError';
}

/** Batches filled ahead of the trainer: one for the step after next absorbs a slow batch; more only hold memory. */
const PREFETCH_BATCHES = 2;

const join = (prefix: string, file: string) => `${prefix.replace(/\/+$/, '')}/${file}`;

interface Checkpoint {
  key: string;
  step: number;
  position: DataPosition;
  skippedRecords: number;
}

/**
 * A pre-training run: reads the pair manifests, trains or loads the WordPiece vocabulary,
 * builds the method's training graph, trains with warm-up + cosine, checkpoints every N steps
 * (parameters, optimizer state, data position) and resumes from the last checkpoint under
 * `prefix` with the same data order; at the end writes the encoder bundle, the config, the
 * training log and the lineage, and measures held-out retrieval.
 */
export async function runPretraining(options: RunPretrainingOptions): Promise<PretrainingResult> {
  const { store, config, prefix } = options;
  const loaded = await loadPairManifests(store, { real: config.data.realPairs, synthetic: config.data.syntheticPairs });
  const skipped: SkippedRecord[] = [...loaded.skipped];
  const split = await trainAndHeldOut(store, config, loaded);
  const tokenizer = await tokenizerFor(store, config, prefix, split.train);
  const train = await tokenizeRecords(tokenizer, split.train, skipped);
  const validation = await tokenizeRecords(tokenizer, split.validation, []);

  const spec = encoderSpecOf(config);
  spec.text!.bert.vocabSize = tokenizer.vocab.length;
  const image = { size: spec.image.size, channels: spec.image.channels ?? 1, mean: 0.5, std: 0.5 };
  const loader = new PairBatchLoader({
    store,
    train: train.kept,
    tokens: train.tokens,
    image,
    batchSize: config.batchSize,
    syntheticRatio: config.data.syntheticRatio,
    seed: config.seed,
    augment: config.data.augment,
    // [CLS] is not a word; [SEP] is the report's last one, as GLoRIA's code (words 1..n+1) and MGCA's (all but [CLS] and padding) count it.
    specialIds: [tokenizer.vocab.indexOf('[CLS]')],
  });
  const stepsPerEpoch = loader.stepsPerEpoch();
  if (stepsPerEpoch === 0)
    throw new PretrainingConfigError(
      'batch_size',
      `${config.batchSize} is more than the ${loader.order(0).length} training pairs of an epoch`,
    );
  const totalSteps = stepsPerEpoch * config.epochs;

  // Built where it is used, so that its initial parameters are garbage once the trainer's first step replaced them.
  const buildStep = () =>
    buildTrainingStep({
      optimizer: optimizerOf(config),
      ...(config.optimizer.maxGradNorm > 0 ? { maxGradNorm: config.optimizer.maxGradNorm } : {}),
      build: (g) =>
        vlpObjective(g, {
          method: config.method,
          spec,
          batchSize: config.batchSize,
          seed: config.seed,
          temperature: config.temperature,
          methodOptions: config.methodOptions,
        }),
    });
  const resume = await latestCheckpoint(store, prefix);
  let position: DataPosition = resume?.position ?? { epoch: 0, cursor: 0 };
  // Started before the session is created, so the worker's start-up and first batch overlap it.
  const prefetch =
    options.dataWorker === false
      ? new Prefetcher(loader, position, PREFETCH_BATCHES)
      : new WorkerPrefetcher(loader, position, PREFETCH_BATCHES);
  let trainer: Trainer;
  try {
    trainer = await Trainer.create(buildStep(), {
      executionProvider: config.executionProvider,
      seed: config.seed,
      ...(options.intraOpThreads ? { intraOpThreads: options.intraOpThreads } : {}),
    });
  } catch (error) {
    await prefetch.close();
    throw error;
  }
  try {
    const { json: configJson, sha256: configSha256 } = configDigest(config);
    let log: LogEntry[] = [];
    let skippedDuringTraining = 0;
    if (resume) {
      const saved = decodeSafetensors(await getBuffer(store, resume.key));
      trainer.load({ tensors: saved.tensors, step: resume.step });
      skippedDuringTraining = resume.skippedRecords;
      log = (await readLog(store, join(prefix, RUN_FILES.log))).filter((e) => e.step <= resume.step);
    } else {
      await applyInitialWeights(store, trainer, config);
      await store.put(join(prefix, RUN_FILES.config), configJson, { mediaType: 'application/json' });
    }
    const resumedFromStep = trainer.step;
    const checkpointEvery = config.checkpointEverySteps || stepsPerEpoch;
    const started = performance.now();
    let waited = 0;
    let samples = 0;
    let lastCheckpoint: Checkpoint | undefined = resume;
    let stepsThisCall = 0;

    while (trainer.step < totalSteps) {
      const waitStart = performance.now();
      const batch = await prefetch.next();
      const waitSeconds = (performance.now() - waitStart) / 1000;
      waited += waitSeconds;
      skippedDuringTraining += batch.skipped.length;
      skipped.push(...batch.skipped);
      const learningRate = learningRateAt(trainer.step + 1, totalSteps, config.optimizer.learningRate, config.schedule);
      const computeStart = performance.now();
      const result = await trainer.trainStep(batch.feeds, learningRate);
      const stepSeconds = (performance.now() - computeStart) / 1000;
      if (!Number.isFinite(result.loss))
        throw new Error(`loss became ${result.loss} at step ${trainer.step}; lower optimizer.learning_rate`);
      position = batch.next;
      samples += config.batchSize;
      stepsThisCall++;
      const elapsed = (performance.now() - started) / 1000;
      const entry: LogEntry = {
        step: trainer.step,
        epoch: position.epoch,
        loss: result.loss,
        parts: result.metrics,
        lr: learningRate,
        grad_norm: result.gradNorm,
        samples_per_s: config.batchSize / (stepSeconds + waitSeconds),
        step_s: stepSeconds,
        data_wait_s: waitSeconds,
      };
      log.push(entry);
      const rate = samples / elapsed;
      options.onProgress?.({
        step: trainer.step,
        totalSteps,
        epoch: Math.min(config.epochs, Math.floor((trainer.step - 1) / stepsPerEpoch) + 1),
        epochs: config.epochs,
        loss: result.loss,
        parts: result.metrics,
        learningRate,
        samplesPerSecond: rate,
        stepSeconds,
        etaSeconds: ((totalSteps - trainer.step) * config.batchSize) / rate,
        dataWaitFraction: waited / elapsed,
        skippedRecords: skippedDuringTraining + loaded.skipped.length,
      });
      if (options.abandonAfterSteps !== undefined && stepsThisCall >= options.abandonAfterSteps)
        throw new PretrainingAbandonedError(`abandoned after ${stepsThisCall} steps`);
      const cancelled = options.signal?.aborted ?? false;
      if (trainer.step % checkpointEvery === 0 || trainer.step === totalSteps || cancelled) {
        // The log first: killed between the two writes, the run resumes from the checkpoint before
        // and trims the log to it; the other way round, the steps since that one would be lost.
        await putJsonl(store, join(prefix, RUN_FILES.log), log);
        lastCheckpoint = await saveCheckpoint(store, prefix, trainer, position, skippedDuringTraining, lastCheckpoint);
      }
      if (cancelled) throw new PretrainingCancelledError(`cancelled at step ${trainer.step}; a checkpoint was written`);
    }
    // The worker's thread and decoded-image cache are not needed for the export and retrieval.
    await prefetch.close();
    if (!lastCheckpoint || lastCheckpoint.step !== trainer.step) {
      lastCheckpoint = await saveCheckpoint(store, prefix, trainer, position, skippedDuringTraining, lastCheckpoint);
    }
    const logRef = await putJsonl(store, join(prefix, RUN_FILES.log), log);
    const configRef =
      (await store.stat(join(prefix, RUN_FILES.config))) ??
      (await store.put(join(prefix, RUN_FILES.config), configJson, { mediaType: 'application/json' }));

    const codeVersion = options.codeVersion ?? 'unknown';
    const bundle = exportEncoderBundle(spec, {
      method: config.method,
      parameters: trainer.parameters(),
      vocabTxt: tokenizer.vocabTxt(),
      lineage: { inputs: loaded.inputs, config_sha256: configSha256, code_version: codeVersion },
    });
    const bundlePrefix = join(prefix, RUN_FILES.bundle);
    const bundleRefs = await writeEncoderBundle(store, bundlePrefix, bundle);
    const retrieval =
      validation.kept.length >= 2
        ? await heldOutRetrieval(store, bundle, spec, validation.kept, validation.tokens)
        : undefined;

    const reasons: Record<string, number> = {};
    for (const s of skipped) {
      const reason = s.reason.startsWith('image failed to decode') ? 'image failed to decode' : s.reason;
      reasons[reason] = (reasons[reason] ?? 0) + 1;
    }
    const elapsed = (performance.now() - started) / 1000;
    const result: PretrainingResult = {
      prefix,
      bundlePrefix,
      refs: {
        imageEncoder: bundleRefs[BUNDLE_FILES.imageEncoder],
        textEncoder: bundleRefs[BUNDLE_FILES.textEncoder],
        tokenizer: bundleRefs[BUNDLE_FILES.vocab],
        encoderManifest: bundleRefs[BUNDLE_FILES.manifest],
        config: configRef,
        trainingLog: logRef,
        checkpoint: (await store.stat(lastCheckpoint.key))!,
      },
      lineage: { inputs: loaded.inputs, configSha256, codeVersion },
      steps: trainer.step,
      finalLoss: log.length ? log[log.length - 1].loss : NaN,
      ...(retrieval ? { retrieval } : {}),
      skippedRecords: Object.values(reasons).reduce((a, b) => a + b, 0),
      skippedReasons: reasons,
      samplesPerSecond: samples / Math.max(elapsed, 1e-9),
      dataWaitFraction: waited / Math.max(elapsed, 1e-9),
      resumedFromStep,
    };
    await store.put(join(prefix, RUN_FILES.result), JSON.stringify(result, null, 2), { mediaType: 'application/json' });
    return result;
  } finally {
    await prefetch.close();
    await trainer.release();
  }
}

/**
 * The training pairs and the held-out ones: data.retrieval_pairs when given (training leaves out
 * what shares a record id or an image with them; the manifest joins the lineage's inputs), else a
 * seeded validation_fraction of the pairs.
 */
async function trainAndHeldOut(
  store: ArtifactStore,
  config: PretrainingConfig,
  loaded: LoadedPairs,
): Promise<{ train: PairRecord[]; validation: PairRecord[] }> {
  if (!config.data.retrievalPairs) return splitPairs(loaded.records, config.data.validationFraction, config.seed);
  const heldOut = await loadRetrievalPairs(store, config.data.retrievalPairs, loaded.records.length);
  loaded.inputs.push(...heldOut.inputs);
  return { train: withoutHeldOut(loaded.records, heldOut.records).train, validation: heldOut.records };
}

function optimizerOf(config: PretrainingConfig): OptimizerConfig {
  const o = config.optimizer;
  return o.name === 'sgd'
    ? { kind: 'sgd', momentum: o.momentum, weightDecay: o.weightDecay }
    : { kind: 'adamw', beta1: o.beta1, beta2: o.beta2, weightDecay: o.weightDecay };
}

/** The vocabulary: the configured vocab.txt, the one this run trained before (resume), or a new one trained on the training reports. */
async function tokenizerFor(
  store: ArtifactStore,
  config: PretrainingConfig,
  prefix: string,
  train: PairRecord[],
): Promise<WordPieceTokenizer> {
  const options = { maxLength: config.textEncoder.maxLength };
  if (config.textEncoder.vocab) {
    const key = keyOf(store, config.textEncoder.vocab);
    if (!(await store.stat(key)))
      throw new PretrainingConfigError('text_encoder.vocab', `${config.textEncoder.vocab} not found`);
    return WordPieceTokenizer.fromVocab((await getBuffer(store, key)).toString('utf8'), options);
  }
  const saved = join(prefix, RUN_FILES.vocab);
  if (await store.stat(saved))
    return WordPieceTokenizer.fromVocab((await getBuffer(store, saved)).toString('utf8'), options);
  let tokenizer: WordPieceTokenizer;
  try {
    tokenizer = WordPieceTokenizer.train(
      train.map((r) => r.report),
      { vocabSize: config.textEncoder.vocabSize, maxLength: config.textEncoder.maxLength },
    );
  } catch (error) {
    if (error instanceof WordPieceError) throw new PretrainingConfigError('text_encoder.vocab_size', error.message);
    throw error;
  }
  await store.put(saved, tokenizer.vocabTxt(), { mediaType: 'text/plain' });
  return tokenizer;
}

/**
 * Initial weights from an ONNX model (its initialisers) or a safetensors file, by parameter name:
 * a name matches as is or under the encoder's prefix (`layer1.0.conv1.weight` ->
 * `image_encoder.layer1.0.conv1.weight`), so torchvision / Hugging Face exports load directly.
 */
async function applyInitialWeights(store: ArtifactStore, trainer: Trainer, config: PretrainingConfig): Promise<void> {
  const sources = [
    [config.imageEncoder.init, SCOPES.image, 'image_encoder.init'],
    [config.textEncoder.init, SCOPES.text, 'text_encoder.init'],
  ] as const;
  if (!sources.some(([uri]) => uri)) return;
  const state = trainer.state();
  for (const [uri, scope, field] of sources) {
    if (!uri) continue;
    const key = keyOf(store, uri);
    if (!(await store.stat(key))) throw new PretrainingConfigError(field, `${uri} not found`);
    const bytes = await getBuffer(store, key);
    const weights = readWeights(bytes, field);
    let matched = 0;
    for (const [name, t] of weights) {
      const target = state.tensors.has(name) ? name : `${scope}.${name}`;
      const current = state.tensors.get(target);
      if (!current || !target.startsWith(`${scope}.`)) continue;
      if (current.dims.join(',') !== t.dims.join(',') || current.dtype !== t.dtype) {
        throw new PretrainingConfigError(
          field,
          `${name} is ${t.dtype}[${t.dims}] but the model's ${target} is ${current.dtype}[${current.dims}]`,
        );
      }
      state.tensors.set(target, t);
      matched++;
    }
    if (matched === 0) throw new PretrainingConfigError(field, `no parameter of ${uri} matches the ${scope} by name`);
  }
  trainer.load(state);
}

function readWeights(bytes: Buffer, field: string): Map<string, Tensor> {
  try {
    if (bytes.length >= 8 && bytes.readBigUInt64LE(0) < BigInt(bytes.length) && bytes[8] === 0x7b)
      return decodeSafetensors(bytes).tensors;
    const graph = decodeModel(bytes).graph;
    return new Map((graph?.initializer ?? []).map((t) => [t.name ?? '', fromTensorProto(t)]));
  } catch (error) {
    throw new PretrainingConfigError(field, `neither safetensors nor ONNX: ${(error as Error).message}`);
  }
}

async function latestCheckpoint(store: ArtifactStore, prefix: string): Promise<Checkpoint | undefined> {
  const key = join(prefix, RUN_FILES.latest);
  if (!(await store.stat(key))) return undefined;
  return JSON.parse((await getBuffer(store, key)).toString('utf8')) as Checkpoint;
}

/** Writes the checkpoint, then the pointer to it (each atomic), then removes the previous one. */
async function saveCheckpoint(
  store: ArtifactStore,
  prefix: string,
  trainer: Trainer,
  position: DataPosition,
  skippedRecords: number,
  previous?: Checkpoint,
): Promise<Checkpoint> {
  const state = trainer.state();
  const key = join(prefix, `checkpoints/step-${String(state.step).padStart(8, '0')}.safetensors`);
  await store.put(
    key,
    encodeSafetensors(state.tensors, {
      step: String(state.step),
      epoch: String(position.epoch),
      cursor: String(position.cursor),
    }),
    {
      mediaType: 'application/octet-stream',
    },
  );
  const checkpoint: Checkpoint = { key, step: state.step, position, skippedRecords };
  await store.put(join(prefix, RUN_FILES.latest), JSON.stringify(checkpoint), { mediaType: 'application/json' });
  if (previous && previous.key !== key) await store.delete(previous.key);
  return checkpoint;
}

async function readLog(store: ArtifactStore, key: string): Promise<LogEntry[]> {
  if (!(await store.stat(key))) return [];
  const entries: LogEntry[] = [];
  for await (const line of readJsonl<LogEntry>(store, key)) if (line.ok) entries.push(line.value);
  return entries;
}

/**
 * Image->text top-1 retrieval on the held-out pairs through the exported ONNX encoders (what the
 * evaluator runs): each image's nearest report by cosine similarity of the embeddings is a hit
 * when it is the image's report (or a word-for-word copy of it).
 */
async function heldOutRetrieval(
  store: ArtifactStore,
  bundle: EncoderBundle,
  spec: EncoderSpec,
  pairs: PairRecord[],
  tokens: TokenizedReports,
): Promise<{ top1: number; chance: number; pairs: number }> {
  const imageSession = await ort.InferenceSession.create(bundle.imageEncoder);
  const textSession = await ort.InferenceSession.create(bundle.textEncoder!);
  try {
    const size = spec.image.size;
    const channels = spec.image.channels ?? 1;
    const usable: { record: PairRecord; pixels: Float32Array }[] = [];
    for (const record of pairs) {
      try {
        const pixels = new Float32Array(channels * size * size);
        normalizeInto(
          centerCropSquare(decodeImage(await getBuffer(store, record.imageKey)), size),
          pixels,
          0,
          channels,
          0.5,
          0.5,
        );
        usable.push({ record, pixels });
      } catch {
        // Counted with the training skips' kind; the held-out set just shrinks.
      }
    }
    const n = usable.length;
    if (n < 2) return { top1: NaN, chance: NaN, pairs: n };
    const L = tokens.length;
    const imageEmbeddings: Float32Array[] = [];
    const textEmbeddings: Float32Array[] = [];
    for (const { record, pixels } of usable) {
      const img = await imageSession.run({
        pixel_values: new ort.Tensor('float32', pixels, [1, channels, size, size]),
      });
      imageEmbeddings.push(normalized(img.image_embedding.data as Float32Array));
      const ids = BigInt64Array.from(tokens.ids.get(record.index)!, (v) => BigInt(v));
      const mask = BigInt64Array.from(tokens.mask.get(record.index)!, (v) => BigInt(v));
      const txt = await textSession.run({
        input_ids: new ort.Tensor('int64', ids, [1, L]),
        attention_mask: new ort.Tensor('int64', mask, [1, L]),
      });
      textEmbeddings.push(normalized(txt.text_embedding.data as Float32Array));
    }
    // Identical reports cannot be told apart: retrieving any copy of an image's report is a hit,
    // and chance is the mean share of copies.
    const reportOf = usable.map(({ record }) => tokens.ids.get(record.index)!.join(','));
    let hits = 0;
    let chance = 0;
    for (let i = 0; i < n; i++) {
      let best = -1;
      let bestScore = -Infinity;
      for (let j = 0; j < n; j++) {
        const score = imageEmbeddings[i].reduce((acc, v, k) => acc + v * textEmbeddings[j][k], 0);
        if (score > bestScore) [best, bestScore] = [j, score];
      }
      if (reportOf[best] === reportOf[i]) hits++;
      chance += reportOf.filter((r) => r === reportOf[i]).length / n / n;
    }
    return { top1: hits / n, chance, pairs: n };
  } finally {
    await imageSession.release();
    await textSession.release();
  }
}

function normalized(v: Float32Array): Float32Array {
  const norm = Math.sqrt(v.reduce((a, b) => a + b * b, 0)) || 1;
  return v.map((x) => x / norm);
}
