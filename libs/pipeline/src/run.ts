import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import {
  getBuffer,
  listLocalFiles,
  openStore,
  putJsonl,
  readJsonl,
  // The bytes digest; named sha256 here until run.ts is free to rename its three calls (#19).
  sha256Hex as sha256,
  storedDigest,
  type ArtifactStore,
} from '@medsyn/artifact-store';
import { exportDataset } from '@medsyn/dataset';
import type { EvaluationResults } from '@medsyn/evaluation';
import { anonymizer, common, evaluator, pretrainer, synthesizer } from '@medsyn/proto';
import { seededShuffle } from '@medsyn/random';
import { parsePretrainingConfig } from '@medsyn/vlp';
import { WordPieceTokenizer } from '@medsyn/wordpiece';
import { ContentHasher, imagesDigest, localImages, reportRecords, stageKey } from './content';
import { SERVICE_NAMES, type Method, type PairSource, type ResolvedPipelineConfig, type ServiceName } from './config';
import { renderPipelineReport, type GridPair } from './report';
import { JobFailedError, connect, startLocalServices, unary, waitForJob, type Endpoints } from './services';

/** What the display shows: stage boundaries and the running job's progress. */
export type PipelineEvent =
  | { type: 'stage'; stage: string; index: number; total: number; resumed: boolean }
  | {
      type: 'progress';
      stage: string;
      completed: number;
      total: number;
      unit: string;
      phase: string;
      etaSeconds: number;
      ratePerSecond: number;
    }
  | { type: 'stage-done'; stage: string; seconds: number; skipped: boolean; summary: Record<string, number | string> }
  | { type: 'services'; local: ServiceName[]; remote: ServiceName[] };

/** A stage failed: names the stage (and the record, where the service said which). */
export class PipelineStageError extends Error {
  override name = 'PipelineStageError';
  constructor(
    readonly stage: string,
    message: string,
  ) {
    super(`stage ${stage} failed: ${message}`);
  }
}

/** One finished stage as state.json keeps it: rerunning the pipeline skips it while its key holds. */
interface StageRecord {
  /** sha256 of everything the stage's result depends on (its config and its inputs' digests). */
  key: string;
  outputs: Record<string, string>;
  summary: Record<string, number | string>;
  seconds: number;
}

interface PipelineState {
  format: 'medsyn.pipeline-state/v1';
  run: string;
  stages: Record<string, StageRecord>;
}

export interface PipelineResult {
  /** Local path of the HTML report. */
  report: string;
  /** Store prefix of everything the run wrote. */
  prefix: string;
  stages: Record<string, StageRecord>;
  results: EvaluationResults;
}

const METHOD_ENUM: Record<Method, pretrainer.Method> = {
  convirt: pretrainer.Method.METHOD_CONVIRT,
  gloria: pretrainer.Method.METHOD_GLORIA,
  mgca: pretrainer.Method.METHOD_MGCA,
};
const TASK_ENUM = {
  classification: evaluator.Task.TASK_CLASSIFICATION,
  segmentation: evaluator.Task.TASK_SEGMENTATION,
  detection: evaluator.Task.TASK_DETECTION,
  zero_shot: evaluator.Task.TASK_ZERO_SHOT,
};
const SCHEDULER_ENUM = {
  pndm: synthesizer.Scheduler.SCHEDULER_PNDM,
  ddim: synthesizer.Scheduler.SCHEDULER_DDIM,
  euler_ancestral: synthesizer.Scheduler.SCHEDULER_EULER_ANCESTRAL,
  dpm_solver_pp_2m: synthesizer.Scheduler.SCHEDULER_DPM_SOLVER_PP_2M,
};
const MODE_ENUM = {
  mask: anonymizer.OutputMode.OUTPUT_MODE_MASK,
  tag: anonymizer.OutputMode.OUTPUT_MODE_TAG,
  surrogate: anonymizer.OutputMode.OUTPUT_MODE_SURROGATE,
};

/**
 * A local model folder: the files the synthesizer is sent (its ONNX export layout; the
 * `*.safetensors` weights it does not read stay here), the digest of every file in the folder
 * (the stage key's), and the digest of the files sent (the model ref's: what the synthesizer holds).
 */
async function modelFiles(
  dir: string,
  hasher: ContentHasher,
): Promise<{ files: string[]; digest: string; sentDigest: string }> {
  const files = listLocalFiles(dir).filter((f) => !f.endsWith('.safetensors'));
  return { files, digest: await hasher.tree(dir), sentDigest: await hasher.tree(dir, files) };
}

const safeKey = (id: string) => id.replace(/[^A-Za-z0-9._-]/g, '_');

/** The pretrainer's config as the pipeline gives it (its seed is the base seed: `pretrain.config.seed`, default 0). */
const pretrainBase = (config: ResolvedPipelineConfig) =>
  parsePretrainingConfig({
    ...config.pretrain.config,
    method: config.pretrain.methods[0],
    data: { real_pairs: ['x'] },
  });

/**
 * The pre-training runs: every method on every pair source, once per seed of `pretrain.seeds`
 * (named `<method>-<source>-seed<k>`), or once with the config's seed when none are listed
 * (named `<method>-<source>`, as before seeds).
 */
export function pretrainingRuns(
  config: Pick<ResolvedPipelineConfig, 'pretrain'>,
): { name: string; method: Method; source: PairSource; seed: number }[] {
  const seeds = config.pretrain.seeds ?? [Number(config.pretrain.config.seed ?? 0)];
  const named = config.pretrain.seeds !== undefined;
  return config.pretrain.methods.flatMap((method) =>
    (config.pretrain.data as PairSource[]).flatMap((source) =>
      seeds.map((seed) => ({ name: `${method}-${source}${named ? `-seed${seed}` : ''}`, method, source, seed })),
    ),
  );
}

/**
 * Runs the pipeline: anonymize the reports, pair the real images with the anonymized texts,
 * synthesize an image per prompt, pre-train each method on real and on synthetic pairs, evaluate
 * every encoder (and a random-init one) on the downstream tasks, and write the HTML report. All
 * work goes through the services' gRPC APIs; artifacts pass between them by store reference.
 *
 * Resumable: state.json in the store records each finished stage with a key over its inputs, and
 * every job is started with a request id derived from that key, so a rerun skips finished stages
 * and re-attaches to (or lets the service resume) the one that was running.
 */
export async function runPipeline(
  config: ResolvedPipelineConfig,
  options: { onEvent?: (event: PipelineEvent) => void; logDir?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<PipelineResult> {
  const emit = options.onEvent ?? (() => {});
  const hasher = new ContentHasher();
  const store = openStore(config.store);
  await store.check();
  const prefix = `pipeline/${config.run}/`;
  const stateKey = `${prefix}state.json`;
  const state: PipelineState = (await store.stat(stateKey))
    ? JSON.parse((await getBuffer(store, stateKey)).toString('utf8'))
    : { format: 'medsyn.pipeline-state/v1', run: config.run, stages: {} };
  const saveState = () => store.put(stateKey, JSON.stringify(state, null, 1), { mediaType: 'application/json' });

  const remote = SERVICE_NAMES.filter((n) => config.services[n]);
  const localNames = SERVICE_NAMES.filter((n) => !config.services[n]);
  emit({ type: 'services', local: localNames, remote });
  // The local evaluator may read the run's own evaluation dataset (it reads nothing outside its roots).
  const env = { EVALUATOR_DATASET_ROOTS: config.evaluate.dataset.root, ...options.env };
  const local = localNames.length
    ? await startLocalServices(localNames, {
        store: config.store,
        logDir: options.logDir ?? path.join(path.dirname(config.report), `medsyn-logs-${config.run}`),
        env,
      })
    : undefined;
  const endpoints = { ...local?.endpoints, ...config.services } as Endpoints;
  // One channel per service for the whole run.
  const clients = new Map<ServiceName, grpc.Client>();
  const client = <C extends grpc.Client>(
    Client: new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => C,
    service: ServiceName,
  ): C => {
    if (!clients.has(service)) clients.set(service, connect(Client, endpoints[service]));
    return clients.get(service) as C;
  };

  const methods = config.pretrain.methods;
  const sources = config.pretrain.data as PairSource[];
  const arms = pretrainingRuns(config);
  const stageNames = [
    'anonymize',
    ...(sources.includes('real') ? ['real-pairs'] : []),
    'synthesize',
    'pretrain-data',
    ...arms.map((a) => `pretrain ${a.name}`),
    'evaluate',
    ...(config.export ? ['export'] : []),
    'report',
  ];
  let stageIndex = 0;

  /** Runs a stage unless state.json holds it with the same key. */
  const stage = async (
    name: string,
    inputs: unknown,
    run: (requestId: string) => Promise<Omit<StageRecord, 'key' | 'seconds'>>,
  ): Promise<StageRecord> => {
    const key = stageKey(inputs);
    const done = state.stages[name];
    emit({ type: 'stage', stage: name, index: stageIndex++, total: stageNames.length, resumed: done?.key === key });
    if (done?.key === key) {
      emit({ type: 'stage-done', stage: name, seconds: done.seconds, skipped: true, summary: done.summary });
      return done;
    }
    const started = Date.now();
    let result: Omit<StageRecord, 'key' | 'seconds'>;
    try {
      result = await run(`${config.run}-${name.replace(/\s+/g, '-')}-${key.slice(0, 16)}`);
    } catch (error) {
      throw error instanceof PipelineStageError ? error : new PipelineStageError(name, describe(error));
    }
    const record: StageRecord = { key, ...result, seconds: (Date.now() - started) / 1000 };
    state.stages[name] = record;
    await saveState();
    emit({ type: 'stage-done', stage: name, seconds: record.seconds, skipped: false, summary: record.summary });
    return record;
  };
  /** A reference to an object the run wrote, with the sha256 and size the store holds, so the service can check what it reads. */
  const refOf = async (key: string) => {
    const ref = await store.stat(key);
    if (!ref) throw new Error(`${store.uriOf(key)} is missing from the store`);
    return ref;
  };
  /** A job's output folder holds its stage key: a rerun with other inputs writes beside an earlier result, never over it (a job owns its prefix). */
  const jobPrefix = (folder: string, requestId: string) => `${prefix}${folder}/${requestId.slice(-16)}/`;
  const follow = async (name: string, service: ServiceName, job: common.Job | undefined) => {
    if (!job) throw new PipelineStageError(name, 'the service returned no job');
    return waitForJob(endpoints[service], job.jobId, (j) => {
      const p = j.progress;
      if (p)
        emit({
          type: 'progress',
          stage: name,
          completed: Number(p.completed),
          total: Number(p.total),
          unit: p.unit,
          phase: p.phase,
          etaSeconds: p.etaSeconds,
          ratePerSecond: p.ratePerSecond,
        });
    });
  };

  try {
    // 1. Anonymize: the reports go into the store, the anonymizer's dataset job de-identifies them.
    const reportsBytes = config.input.reports.includes('://')
      ? await getBuffer(store, store.keyOf(config.input.reports))
      : fs.readFileSync(config.input.reports);
    const csv = /\.csv$/i.test(config.input.reports);
    const anonymized = await stage(
      'anonymize',
      { reports: sha256(reportsBytes), input: { ...config.input, reports: undefined }, anonymize: config.anonymize },
      async (requestId) => {
        const inputKey = `${prefix}input/reports.${csv ? 'csv' : 'jsonl'}`;
        const input = await store.put(inputKey, reportsBytes, { mediaType: csv ? 'text/csv' : 'application/x-ndjson' });
        const response = await unary<anonymizer.StartAnonymizeDatasetRequest, anonymizer.StartAnonymizeDatasetResponse>(
          client(anonymizer.AnonymizerServiceClient, 'anonymizer'),
          'startAnonymizeDataset',
          {
            requestId,
            input,
            format: csv
              ? anonymizer.ManifestFormat.MANIFEST_FORMAT_CSV
              : anonymizer.ManifestFormat.MANIFEST_FORMAT_JSONL,
            idField: config.input.id_field,
            textField: config.input.text_field,
            patientKeyField: config.input.patient_field ?? '',
            options: { mode: MODE_ENUM[config.anonymize.mode], omitSpans: true },
            outputPrefix: jobPrefix('anonymize', requestId),
          },
        );
        const job = await follow('anonymize', 'anonymizer', response.job);
        const out = jobPrefix('anonymize', requestId);
        return {
          outputs: {
            anonymized: `${out}anonymized.jsonl`,
            prompts: `${out}prompts.jsonl`,
            errors: `${out}errors.jsonl`,
          },
          summary: { reports: Number(job.progress?.completed ?? 0), rejected: Number(job.progress?.failed ?? 0) },
        };
      },
    );
    const texts = new Map<string, string>();
    for await (const line of readJsonl<{ id: string; text: string }>(store, anonymized.outputs.anonymized!))
      if (line.ok) texts.set(line.value.id, line.value.text);

    // 2. Real pairs: each real image with its report's anonymized text.
    const pairs: Partial<Record<PairSource, StageRecord>> = {};
    if (sources.includes('real')) {
      const imageField = config.input.image_field!;
      const reportsDir = config.input.reports.includes('://') ? undefined : path.dirname(config.input.reports);
      // The anonymizer has read every line (a bad one is in its errors.jsonl); such lines are skipped here.
      const records = reportRecords(reportsBytes);
      const images = reportsDir
        ? await imagesDigest(hasher, localImages(records, reportsDir, config.input.id_field, imageField))
        : await storeImagesDigest(store, records, config.input.reports, config.input.id_field, imageField);
      pairs.real = await stage(
        'real-pairs',
        { anonymized: anonymized.key, reports: sha256(reportsBytes), image_field: imageField, images },
        async () => {
          const lines: unknown[] = [];
          for (const record of records) {
            const id = String(record[config.input.id_field] ?? '');
            const image = record[imageField];
            const text = texts.get(id);
            if (!text || typeof image !== 'string' || !image) continue;
            let uri: string;
            if (reportsDir) {
              const file = path.resolve(reportsDir, image);
              if (!fs.existsSync(file))
                throw new PipelineStageError('real-pairs', `record ${id}: ${imageField} names a missing file ${file}`);
              const key = `${prefix}real/images/${safeKey(id)}${path.extname(file)}`;
              await store.put(key, fs.readFileSync(file));
              uri = store.uriOf(key);
            } else uri = new URL(image, config.input.reports).href;
            lines.push({ id, image: uri, report: text });
          }
          if (lines.length === 0)
            throw new PipelineStageError('real-pairs', `no record has both an anonymized text and a ${imageField}`);
          await putJsonl(store, `${prefix}real/pairs.jsonl`, lines);
          return { outputs: { pairs: `${prefix}real/pairs.jsonl` }, summary: { pairs: lines.length } };
        },
      );
    }

    // 3. Synthesize: one image per anonymized prompt (or more), through the synthesizer's dataset job.
    const modelIsLocal = !config.synthesize.model.includes('://');
    const model = modelIsLocal ? await modelFiles(config.synthesize.model, hasher) : undefined;
    const synthesized = await stage(
      'synthesize',
      { prompts: anonymized.key, model: model?.digest ?? config.synthesize.model, params: config.synthesize },
      async (requestId) => {
        let modelUri = config.synthesize.model;
        if (model) {
          const modelPrefix = `models/${safeKey(path.basename(config.synthesize.model))}-${model.digest.slice(0, 12)}/`;
          for (const file of model.files)
            if (!(await store.stat(`${modelPrefix}${file}`)))
              await store.put(`${modelPrefix}${file}`, fs.createReadStream(path.join(config.synthesize.model, file)));
          modelUri = `${store.uriOf(modelPrefix.slice(0, -1))}/`;
        }
        const s = config.synthesize;
        const response = await unary<
          synthesizer.StartSynthesizeDatasetRequest,
          synthesizer.StartSynthesizeDatasetResponse
        >(client(synthesizer.SynthesizerServiceClient, 'synthesizer'), 'startSynthesizeDataset', {
          requestId,
          prompts: await refOf(anonymized.outputs.prompts!),
          // A folder's digest is its treeDigest; a model given by URI goes as a bare URI (its owner knows its digest).
          model: { uri: modelUri, sha256: model?.sentDigest ?? '', sizeBytes: 0, mediaType: '' },
          params: {
            numInferenceSteps: s.num_inference_steps,
            guidanceScale: s.guidance_scale,
            seed: s.seed,
            scheduler: s.scheduler ? SCHEDULER_ENUM[s.scheduler] : synthesizer.Scheduler.SCHEDULER_UNSPECIFIED,
            imageFormat: synthesizer.ImageFormat.IMAGE_FORMAT_PNG_GRAY8,
            maxAttempts: s.max_attempts,
          },
          shard: { index: 0, count: 1 },
          imagesPerPrompt: s.images_per_prompt,
          outputPrefix: jobPrefix('synthesize', requestId),
        });
        const job = await follow('synthesize', 'synthesizer', response.job);
        const pairsOutput = job.outputs.find((o) => /pairs-shard-[^/]*\.jsonl$/.test(o.uri));
        if (!pairsOutput)
          throw new PipelineStageError('synthesize', 'the synthesizer job listed no pair manifest in its outputs');
        const synthesizerPairs = store.keyOf(pairsOutput.uri);
        // The synthetic pairs carry the same anonymized texts as the real ones: only the images differ.
        const lines: unknown[] = [];
        let rejected = 0;
        for await (const line of readJsonl<{ image_uri: string; report_id: string; accepted?: boolean }>(
          store,
          synthesizerPairs,
        )) {
          if (!line.ok) continue;
          const text = texts.get(line.value.report_id);
          if (line.value.accepted === false) rejected++;
          else if (text) lines.push({ id: line.value.report_id, image: line.value.image_uri, report: text });
        }
        if (lines.length === 0) throw new PipelineStageError('synthesize', 'the synthesizer accepted no image');
        await putJsonl(store, `${prefix}synthetic/pairs.jsonl`, lines);
        return {
          outputs: { pairs: `${prefix}synthetic/pairs.jsonl`, synthesizer_pairs: synthesizerPairs, model: modelUri },
          summary: { images: lines.length, rejected, failed: Number(job.progress?.failed ?? 0) },
        };
      },
    );
    pairs.synthetic = synthesized;

    // 4. What every arm shares: the held-out reports (scored on their real images, trained on by no
    // arm) and one WordPiece vocabulary trained on the other reports' texts.
    const shared = await stage(
      'pretrain-data',
      {
        pairs: sources.map((s) => pairs[s]!.key),
        validation: config.pretrain.validation_fraction,
        seed: pretrainBase(config).seed,
        text: config.pretrain.config.text_encoder,
      },
      async (requestId) => {
        const out = jobPrefix('pretrain-data', requestId);
        const read = async (source: PairSource) => {
          const lines: { id: string; image: string; report: string }[] = [];
          for await (const line of readJsonl<{ id: string; image: string; report: string }>(
            store,
            pairs[source]!.outputs.pairs!,
          ))
            if (line.ok) lines.push(line.value);
          return lines;
        };
        const heldOutFrom = await read(sources.includes('real') ? 'real' : 'synthetic');
        const count = Math.floor(heldOutFrom.length * (config.pretrain.validation_fraction ?? 0));
        const heldOut =
          count >= 2
            ? seededShuffle(heldOutFrom, pretrainBase(config).seed, 1)
                .slice(0, count)
                .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
            : [];
        const outputs: Record<string, string> = {};
        if (heldOut.length) {
          await putJsonl(store, `${out}retrieval-pairs.jsonl`, heldOut);
          outputs.retrieval_pairs = `${out}retrieval-pairs.jsonl`;
        }
        const text = pretrainBase(config).textEncoder;
        let vocabSize = 0;
        if (!text.vocab) {
          const held = new Set(heldOut.map((p) => p.id));
          const reports = new Map<string, string>();
          for (const source of sources)
            for (const p of await read(source)) if (!held.has(p.id) && !reports.has(p.id)) reports.set(p.id, p.report);
          const tokenizer = WordPieceTokenizer.train([...reports.values()], {
            vocabSize: text.vocabSize,
            maxLength: text.maxLength,
          });
          await store.put(`${out}vocab.txt`, tokenizer.vocabTxt(), { mediaType: 'text/plain' });
          outputs.vocab = `${out}vocab.txt`;
          vocabSize = tokenizer.vocab.length;
        }
        return { outputs, summary: { held_out: heldOut.length, vocab_size: vocabSize } };
      },
    );

    // 5. Pre-train every method on every pair source, once per seed.
    const bundles: {
      name: string;
      method: Method;
      source: PairSource;
      bundle: string;
      bundleSha256: string;
      summary: Record<string, number | string>;
    }[] = [];
    for (const { name: armName, method, source, seed } of arms) {
      const name = `pretrain ${armName}`;
      const from = pairs[source]!;
      const armConfig = { ...config.pretrain.config, seed };
      const record = await stage(
        name,
        {
          pairs: from.key,
          method,
          config: armConfig,
          validation: config.pretrain.validation_fraction,
          shared: shared.key,
        },
        async (requestId) => {
          const pairsRef = [await refOf(from.outputs.pairs!)];
          const request = pretrainer.PretrainingConfig.fromJSON({ ...armConfig, method: undefined, data: undefined });
          request.method = METHOD_ENUM[method];
          const retrievalPairs = shared.outputs.retrieval_pairs
            ? await refOf(shared.outputs.retrieval_pairs)
            : undefined;
          // With shared held-out pairs, no arm holds out a fraction of its own pairs.
          request.data = {
            realPairs: source === 'real' ? pairsRef : [],
            syntheticPairs: source === 'synthetic' ? pairsRef : [],
            syntheticRatio: 0,
            validationFraction: retrievalPairs ? 0 : (config.pretrain.validation_fraction ?? 0),
            disableAugmentation: false,
            retrievalPairs,
          };
          if (shared.outputs.vocab)
            request.textEncoder = {
              ...pretrainer.TextEncoderConfig.fromPartial(request.textEncoder ?? {}),
              vocab: await refOf(shared.outputs.vocab),
            };
          const pretrain = client(pretrainer.PretrainerServiceClient, 'pretrainer');
          const response = await unary<pretrainer.StartPretrainingRequest, pretrainer.StartPretrainingResponse>(
            pretrain,
            'startPretraining',
            { requestId, config: request, outputPrefix: jobPrefix(`pretrain/${armName}`, requestId) },
          );
          const job = await follow(name, 'pretrainer', response.job);
          const result = await unary<pretrainer.GetPretrainingResultRequest, pretrainer.GetPretrainingResultResponse>(
            pretrain,
            'getPretrainingResult',
            { jobId: job.jobId },
          );
          const s = result.summary;
          return {
            // The bundle's tree digest as the pretrainer left it, so that the evaluator reads those bytes or refuses.
            outputs: {
              bundle: result.bundlePrefix,
              bundle_sha256: await storedDigest(store, result.bundlePrefix.replace(/\/+$/, ''), true),
            },
            summary: {
              steps: Number(s?.steps ?? 0),
              final_loss: s?.finalLoss ?? NaN,
              // 0 held-out pairs: no retrieval to tell whether the arm learned.
              retrieval_top1: s?.validationPairs ? s.retrievalTop1 : NaN,
              retrieval_chance: s?.validationPairs ? s.retrievalChance : NaN,
              retrieval_pairs: Number(s?.validationPairs ?? 0),
              samples_per_second: s?.samplesPerSecond ?? NaN,
            },
          };
        },
      );
      // A stage recorded before bundles had digests sends none (the evaluator then does not check).
      bundles.push({
        name: armName,
        method,
        source,
        bundle: record.outputs.bundle!,
        bundleSha256: record.outputs.bundle_sha256 ?? '',
        summary: record.summary,
      });
    }

    // 6. Evaluate every encoder, and a random-init one of the same architecture, on the downstream tasks.
    const imageEncoder = parsePretrainingConfig({
      ...config.pretrain.config,
      method: methods[0],
      data: { real_pairs: ['x'] },
    }).imageEncoder;
    const e = config.evaluate;
    const dataset = await hasher.tree(e.dataset.root);
    const evaluated = await stage(
      'evaluate',
      { bundles: bundles.map((b) => state.stages[`pretrain ${b.name}`]!.key), evaluate: e, dataset },
      async (requestId) => {
        const evaluate = client(evaluator.EvaluatorServiceClient, 'evaluator');
        const encoders: evaluator.Encoder[] = bundles.map((b) =>
          evaluator.Encoder.fromPartial({
            name: b.name,
            bundle: b.bundle,
            bundleSha256: b.bundleSha256,
            pretrainingData: b.source,
          }),
        );
        if (e.baseline)
          encoders.push(
            evaluator.Encoder.fromPartial({
              name: 'random-init',
              pretrainingData: 'random',
              baseline: {
                architecture: imageEncoder.architecture,
                size: imageEncoder.imageSize,
                width: imageEncoder.width ?? 0,
                seed: 1,
              },
            }),
          );
        const response = await unary<evaluator.StartEvaluationRequest, evaluator.StartEvaluationResponse>(
          evaluate,
          'startEvaluation',
          {
            requestId,
            config: evaluator.EvaluationConfig.fromPartial({
              encoders,
              dataset: {
                format: e.dataset.format,
                uri: pathToFileURL(e.dataset.root).href,
                sha256: dataset,
                options: e.dataset.options ?? {},
              },
              tasks: e.tasks.map((t) => TASK_ENUM[t]),
              labelFractions: e.label_fractions ?? [],
              seeds: e.seeds ?? [],
              splitSeed: e.split_seed,
              maxImages: e.max_images ?? 0,
              epochs: e.epochs ?? 0,
              reportSamples: e.report_samples ?? 0,
              executionProvider: '',
            }),
            outputPrefix: jobPrefix('evaluate', requestId),
          },
        );
        const job = await follow('evaluate', 'evaluator', response.job);
        const result = await unary<evaluator.GetEvaluationResultRequest, evaluator.GetEvaluationResultResponse>(
          evaluate,
          'getEvaluationResult',
          { jobId: job.jobId },
        );
        return {
          outputs: { results: store.keyOf(result.results!.uri), report: store.keyOf(result.report!.uri) },
          summary: { metrics: result.metrics.length },
        };
      },
    );

    // 7. Export (optional): the synthetic pairs as a shareable WebDataset bundle with its card.
    const x = config.export;
    if (x) {
      await stage('export', { synthesized: synthesized.key, export: x }, async () => {
        const result = await exportDataset({
          store,
          pairs: [synthesized.outputs.synthesizer_pairs!],
          reports: anonymized.outputs.anonymized,
          out: store,
          outPrefix: `${prefix}dataset/`,
          shardSize: x.shard_size,
          card: {
            name: x.name ?? `medsyn-${config.run}`,
            generator: {
              name: path.basename(config.synthesize.model.replace(/\/+$/, '')),
              uri: synthesized.outputs.model,
            },
            promptsSource:
              x.prompts_source ?? `${path.basename(config.input.reports)}, de-identified by the medsyn anonymizer`,
            deid: { mode: config.anonymize.mode, recall: x.deid_recall, recallSource: x.deid_recall_source },
            licence: x.licence,
          },
        });
        return {
          outputs: { bundle: `${prefix}dataset/`, card: result.cardKey },
          summary: { samples: result.samples, shards: result.shards.length },
        };
      });
    }

    // 8. Report: the evaluator's results with the run's summary and real vs synthetic images side by side.
    const results = JSON.parse(
      (await getBuffer(store, evaluated.outputs.results!)).toString('utf8'),
    ) as EvaluationResults;
    emit({ type: 'stage', stage: 'report', index: stageIndex++, total: stageNames.length, resumed: false });
    const started = Date.now();
    const html = renderPipelineReport({
      config,
      results,
      stages: state.stages,
      grid: await gridPairs(store, pairs, 8),
    });
    await store.put(`${prefix}report.html`, html, { mediaType: 'text/html' });
    fs.mkdirSync(path.dirname(config.report), { recursive: true });
    fs.writeFileSync(config.report, html);
    emit({
      type: 'stage-done',
      stage: 'report',
      seconds: (Date.now() - started) / 1000,
      skipped: false,
      summary: { file: config.report },
    });
    return { report: config.report, prefix, stages: state.stages, results };
  } finally {
    for (const c of clients.values()) c.close();
    await local?.stop();
    await store.close();
  }
}

/** Images named by URI beside reports in the store: their digests as the store keeps them ("unknown" outside it). */
async function storeImagesDigest(
  store: ArtifactStore,
  records: readonly Record<string, unknown>[],
  reports: string,
  idField: string,
  imageField: string,
): Promise<string> {
  const lines: string[] = [];
  for (const record of records) {
    const image = record[imageField];
    if (typeof image !== 'string' || !image) continue;
    const uri = new URL(image, reports).href;
    let digest = 'unknown';
    try {
      digest = (await store.stat(store.keyOf(uri)))?.sha256 ?? 'missing';
    } catch {
      // Not in this store: the URI alone goes into the key.
    }
    lines.push(`${String(record[idField] ?? '')}\t${uri}\t${digest}\n`);
  }
  return sha256(lines.join(''));
}

/** The first `count` reports with both a real and a synthetic image, for the side-by-side grid. */
async function gridPairs(
  store: ArtifactStore,
  pairs: Partial<Record<PairSource, StageRecord>>,
  count: number,
): Promise<GridPair[]> {
  const read = async (record: StageRecord | undefined) => {
    const out = new Map<string, { image: string; report: string }>();
    if (record)
      for await (const line of readJsonl<{ id: string; image: string; report: string }>(store, record.outputs.pairs!))
        if (line.ok) out.set(line.value.id, line.value);
    return out;
  };
  const [real, synthetic] = [await read(pairs.real), await read(pairs.synthetic)];
  const ids = [...synthetic.keys()].filter((id) => real.size === 0 || real.has(id)).slice(0, count);
  return Promise.all(
    ids.map(async (id) => ({
      id,
      report: synthetic.get(id)!.report,
      real: real.has(id) ? await getBuffer(store, store.keyOf(real.get(id)!.image)) : undefined,
      synthetic: await getBuffer(store, store.keyOf(synthetic.get(id)!.image)),
    })),
  );
}

function describe(error: unknown): string {
  if (error instanceof JobFailedError) return error.message;
  const e = error as grpc.ServiceError;
  if (typeof e?.code === 'number' && e.details !== undefined) return `${grpc.status[e.code]}: ${e.details}`;
  return (error as Error)?.message ?? String(error);
}
