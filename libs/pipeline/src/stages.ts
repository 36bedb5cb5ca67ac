// The pipeline's stages, in the order runPipeline runs them (docs/pipeline.md, "What it does").
// Each goes through PipelineRun.stage, which skips it while state.json holds it with the same key.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  getBuffer,
  listLocalFiles,
  putJsonl,
  readJsonl,
  sha256Hex,
  storedDigest,
  type ArtifactStore,
} from '@medsyn/artifact-store';
import { parsePretrainingConfigWithoutPairs, type Method } from '@medsyn/config';
import { exportDataset, readPairLines, type PairLine, type PairSource } from '@medsyn/dataset';
import type { EvaluationResults } from '@medsyn/evaluation-report';
import { seededShuffle } from '@medsyn/random';
import { anonymizer, evaluator, pretrainer, synthesizer } from '@medsyn/proto';
import { WordPieceTokenizer } from '@medsyn/wordpiece';
import type { ResolvedPipelineConfig } from './config';
import { imagesDigest, localImages, reportRecords, type ContentHasher } from './content';
import { PipelineStageError, type PipelineRun, type StageRecord } from './pipeline-run';
import { renderPipelineReport, type GridPair } from './report';
import { unary } from './services';

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

const safeKey = (id: string) => id.replace(/[^A-Za-z0-9._-]/g, '_');

/** One image-report pair of the run's pair manifests (real/pairs.jsonl, synthetic/pairs.jsonl): the run knows every id. */
type RunPair = PairLine & { id: string };

/** The pair manifest of each pair source the run made (a synthetic-only run has no real one). */
export type PairStages = Partial<Record<PairSource, StageRecord>>;

/** A pre-trained encoder, as the evaluate stage sends it. */
export interface PretrainedEncoder {
  name: string;
  method: Method;
  source: PairSource;
  bundle: string;
  bundleSha256: string;
  summary: Record<string, number | string>;
}

/** The pretrainer's config as the pipeline gives it (its seed is the base seed: `pretrain.config.seed`, default 0). */
const pretrainBase = (config: ResolvedPipelineConfig) =>
  parsePretrainingConfigWithoutPairs({ ...config.pretrain.config, method: config.pretrain.methods[0] });

/** The reports file's bytes, from the local file or the store: every stage that reads reports hashes these. */
export async function readReports(run: PipelineRun): Promise<Buffer> {
  const reports = run.config.input.reports;
  return reports.includes('://') ? getBuffer(run.store, run.store.keyOf(reports)) : fs.readFileSync(reports);
}

/** 1. anonymize: the reports go into the store, the anonymizer's dataset job de-identifies them. */
export async function anonymize(run: PipelineRun, reportsBytes: Buffer): Promise<StageRecord> {
  const { config, store } = run;
  const csv = /\.csv$/i.test(config.input.reports);
  return run.stage(
    'anonymize',
    { reports: sha256Hex(reportsBytes), input: { ...config.input, reports: undefined }, anonymize: config.anonymize },
    async (requestId) => {
      const inputKey = `${run.prefix}input/reports.${csv ? 'csv' : 'jsonl'}`;
      const input = await store.put(inputKey, reportsBytes, { mediaType: csv ? 'text/csv' : 'application/x-ndjson' });
      const out = run.jobPrefix('anonymize', requestId);
      const response = await unary<anonymizer.StartAnonymizeDatasetRequest, anonymizer.StartAnonymizeDatasetResponse>(
        run.client(anonymizer.AnonymizerServiceClient, 'anonymizer'),
        'startAnonymizeDataset',
        {
          requestId,
          input,
          format: csv ? anonymizer.ManifestFormat.MANIFEST_FORMAT_CSV : anonymizer.ManifestFormat.MANIFEST_FORMAT_JSONL,
          idField: config.input.id_field,
          textField: config.input.text_field,
          patientKeyField: config.input.patient_field ?? '',
          options: { mode: MODE_ENUM[config.anonymize.mode], omitSpans: true },
          outputPrefix: out,
        },
      );
      const job = await run.follow('anonymize', 'anonymizer', response.job);
      return {
        outputs: { anonymized: `${out}anonymized.jsonl`, prompts: `${out}prompts.jsonl`, errors: `${out}errors.jsonl` },
        summary: { reports: Number(job.progress?.completed ?? 0), rejected: Number(job.progress?.failed ?? 0) },
      };
    },
  );
}

/** The anonymized text of each report, by id (a line the anonymizer could not read is not there). */
export async function anonymizedTexts(run: PipelineRun, anonymized: StageRecord): Promise<Map<string, string>> {
  const texts = new Map<string, string>();
  for await (const line of readJsonl<{ id: string; text: string }>(run.store, anonymized.outputs.anonymized!))
    if (line.ok) texts.set(line.value.id, line.value.text);
  return texts;
}

/** 2. real-pairs: each real image with its report's anonymized text. */
export async function realPairs(
  run: PipelineRun,
  reportsBytes: Buffer,
  anonymized: StageRecord,
  texts: Map<string, string>,
): Promise<StageRecord> {
  const { config, store } = run;
  const imageField = config.input.image_field!;
  const reportsDir = config.input.reports.includes('://') ? undefined : path.dirname(config.input.reports);
  // The anonymizer has read every line (a bad one is in its errors.jsonl); such lines are skipped here.
  const records = reportRecords(reportsBytes);
  const images = reportsDir
    ? await imagesDigest(run.hasher, localImages(records, reportsDir, config.input.id_field, imageField))
    : await storeImagesDigest(store, records, config.input.reports, config.input.id_field, imageField);
  return run.stage(
    'real-pairs',
    { anonymized: anonymized.key, reports: sha256Hex(reportsBytes), image_field: imageField, images },
    async () => {
      const lines: RunPair[] = [];
      for (const record of records) {
        const id = String(record[config.input.id_field] ?? '');
        const image = record[imageField];
        const text = texts.get(id);
        if (!text || typeof image !== 'string' || !image) continue;
        const uri = reportsDir
          ? await putLocalImage(run, id, path.resolve(reportsDir, image))
          : new URL(image, config.input.reports).href;
        lines.push({ id, image: uri, report: text });
      }
      if (lines.length === 0)
        throw new PipelineStageError('real-pairs', `no record has both an anonymized text and a ${imageField}`);
      await putJsonl(store, `${run.prefix}real/pairs.jsonl`, lines);
      return { outputs: { pairs: `${run.prefix}real/pairs.jsonl` }, summary: { pairs: lines.length } };
    },
  );
}

/** Copies a report's local image into the run's store and returns its URI there. */
async function putLocalImage(run: PipelineRun, id: string, file: string): Promise<string> {
  if (!fs.existsSync(file))
    throw new PipelineStageError(
      'real-pairs',
      `record ${id}: ${run.config.input.image_field} names a missing file ${file}`,
    );
  const key = `${run.prefix}real/images/${safeKey(id)}${path.extname(file)}`;
  await run.store.put(key, fs.readFileSync(file));
  return run.store.uriOf(key);
}

/** 3. synthesize: one image per anonymized prompt (or more), through the synthesizer's dataset job. */
export async function synthesize(
  run: PipelineRun,
  anonymized: StageRecord,
  texts: Map<string, string>,
): Promise<StageRecord> {
  const { config, store } = run;
  const s = config.synthesize;
  const model = s.model.includes('://') ? undefined : await modelFiles(s.model, run.hasher);
  return run.stage(
    'synthesize',
    { prompts: anonymized.key, model: model?.digest ?? s.model, params: s },
    async (requestId) => {
      const modelUri = model ? await putModel(run, model) : s.model;
      const response = await unary<
        synthesizer.StartSynthesizeDatasetRequest,
        synthesizer.StartSynthesizeDatasetResponse
      >(run.client(synthesizer.SynthesizerServiceClient, 'synthesizer'), 'startSynthesizeDataset', {
        requestId,
        prompts: await run.refOf(anonymized.outputs.prompts!),
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
        outputPrefix: run.jobPrefix('synthesize', requestId),
      });
      const job = await run.follow('synthesize', 'synthesizer', response.job);
      const pairsOutput = job.outputs.find((o) => /pairs-shard-[^/]*\.jsonl$/.test(o.uri));
      if (!pairsOutput)
        throw new PipelineStageError('synthesize', 'the synthesizer job listed no pair manifest in its outputs');
      const synthesizerPairs = store.keyOf(pairsOutput.uri);
      // The synthetic pairs carry the same anonymized texts as the real ones: only the images differ.
      const lines: RunPair[] = [];
      let rejected = 0;
      for await (const pair of readPairLines(store, synthesizerPairs)) {
        if (!pair.ok) continue;
        const { id, image, accepted } = pair.line;
        const text = id === undefined ? undefined : texts.get(id);
        if (accepted === false) rejected++;
        else if (id !== undefined && text) lines.push({ id, image, report: text });
      }
      if (lines.length === 0) throw new PipelineStageError('synthesize', 'the synthesizer accepted no image');
      await putJsonl(store, `${run.prefix}synthetic/pairs.jsonl`, lines);
      return {
        outputs: { pairs: `${run.prefix}synthetic/pairs.jsonl`, synthesizer_pairs: synthesizerPairs, model: modelUri },
        summary: { images: lines.length, rejected, failed: Number(job.progress?.failed ?? 0) },
      };
    },
  );
}

/** A local model folder, as the synthesize stage keys and sends it. */
interface ModelFiles {
  dir: string;
  /** The files the synthesizer is sent (its ONNX export layout; the `*.safetensors` weights it does not read stay here). */
  files: string[];
  /** Digest of every file in the folder (the stage key's). */
  digest: string;
  /** Digest of the files sent (the model ref's: what the synthesizer holds). */
  sentDigest: string;
}

async function modelFiles(dir: string, hasher: ContentHasher): Promise<ModelFiles> {
  const files = listLocalFiles(dir).filter((f) => !f.endsWith('.safetensors'));
  return { dir, files, digest: await hasher.tree(dir), sentDigest: await hasher.tree(dir, files) };
}

/** Uploads a local model to the store once per digest (files already there are kept) and returns its folder URI. */
async function putModel(run: PipelineRun, model: ModelFiles): Promise<string> {
  const modelPrefix = `models/${safeKey(path.basename(model.dir))}-${model.digest.slice(0, 12)}/`;
  for (const file of model.files)
    if (!(await run.store.stat(`${modelPrefix}${file}`)))
      await run.store.put(`${modelPrefix}${file}`, fs.createReadStream(path.join(model.dir, file)));
  return `${run.store.uriOf(modelPrefix.slice(0, -1))}/`;
}

/**
 * 4. pretrain-data: what every arm shares: the held-out reports (scored on their real images,
 * trained on by no arm) and one WordPiece vocabulary trained on the other reports' texts.
 */
export async function pretrainData(run: PipelineRun, pairs: PairStages): Promise<StageRecord> {
  const { config, store } = run;
  const sources = config.pretrain.data as PairSource[];
  const base = pretrainBase(config);
  return run.stage(
    'pretrain-data',
    {
      pairs: sources.map((s) => pairs[s]!.key),
      validation: config.pretrain.validation_fraction,
      seed: base.seed,
      text: config.pretrain.config.text_encoder,
    },
    async (requestId) => {
      const out = run.jobPrefix('pretrain-data', requestId);
      const read = (source: PairSource) => readPairs(store, pairs[source]!);
      const heldOutFrom = await read(sources.includes('real') ? 'real' : 'synthetic');
      const count = Math.floor(heldOutFrom.length * (config.pretrain.validation_fraction ?? 0));
      const heldOut =
        count >= 2
          ? seededShuffle(heldOutFrom, base.seed, 1)
              .slice(0, count)
              .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
          : [];
      const outputs: Record<string, string> = {};
      if (heldOut.length) {
        await putJsonl(store, `${out}retrieval-pairs.jsonl`, heldOut);
        outputs.retrieval_pairs = `${out}retrieval-pairs.jsonl`;
      }
      const text = base.textEncoder;
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
}

async function readPairs(store: ArtifactStore, pairs: StageRecord): Promise<RunPair[]> {
  const lines: RunPair[] = [];
  for await (const pair of readPairLines(store, pairs.outputs.pairs!))
    if (pair.ok && pair.line.id !== undefined) lines.push({ ...pair.line, id: pair.line.id });
  return lines;
}

/** 5. pretrain <method>-<source>[-seed<k>]: one pre-training arm through the pretrainer's job. */
export async function pretrain(
  run: PipelineRun,
  arm: { name: string; method: Method; source: PairSource; seed: number },
  pairs: PairStages,
  shared: StageRecord,
): Promise<PretrainedEncoder> {
  const { config, store } = run;
  const name = `pretrain ${arm.name}`;
  const from = pairs[arm.source]!;
  const armConfig = { ...config.pretrain.config, seed: arm.seed };
  const record = await run.stage(
    name,
    {
      pairs: from.key,
      method: arm.method,
      config: armConfig,
      validation: config.pretrain.validation_fraction,
      shared: shared.key,
    },
    async (requestId) => {
      const pretrain = run.client(pretrainer.PretrainerServiceClient, 'pretrainer');
      const response = await unary<pretrainer.StartPretrainingRequest, pretrainer.StartPretrainingResponse>(
        pretrain,
        'startPretraining',
        {
          requestId,
          config: await pretrainingRequest(run, armConfig, arm, from, shared),
          outputPrefix: run.jobPrefix(`pretrain/${arm.name}`, requestId),
        },
      );
      const job = await run.follow(name, 'pretrainer', response.job);
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
  return {
    name: arm.name,
    method: arm.method,
    source: arm.source,
    bundle: record.outputs.bundle!,
    bundleSha256: record.outputs.bundle_sha256 ?? '',
    summary: record.summary,
  };
}

/** An arm's PretrainingConfig request: its pairs, the shared held-out pairs and vocabulary. */
async function pretrainingRequest(
  run: PipelineRun,
  armConfig: Record<string, unknown>,
  arm: { method: Method; source: PairSource },
  from: StageRecord,
  shared: StageRecord,
): Promise<pretrainer.PretrainingConfig> {
  const pairsRef = [await run.refOf(from.outputs.pairs!)];
  const request = pretrainer.PretrainingConfig.fromJSON({ ...armConfig, method: undefined, data: undefined });
  request.method = METHOD_ENUM[arm.method];
  const retrievalPairs = shared.outputs.retrieval_pairs ? await run.refOf(shared.outputs.retrieval_pairs) : undefined;
  // With shared held-out pairs, no arm holds out a fraction of its own pairs.
  request.data = {
    realPairs: arm.source === 'real' ? pairsRef : [],
    syntheticPairs: arm.source === 'synthetic' ? pairsRef : [],
    syntheticRatio: 0,
    validationFraction: retrievalPairs ? 0 : (run.config.pretrain.validation_fraction ?? 0),
    disableAugmentation: false,
    retrievalPairs,
  };
  if (shared.outputs.vocab)
    request.textEncoder = {
      ...pretrainer.TextEncoderConfig.fromPartial(request.textEncoder ?? {}),
      vocab: await run.refOf(shared.outputs.vocab),
    };
  return request;
}

/** 6. evaluate: every encoder, and a random-init one of the same architecture, on the downstream tasks. */
export async function evaluate(run: PipelineRun, encoders: PretrainedEncoder[]): Promise<StageRecord> {
  const { config, store } = run;
  const e = config.evaluate;
  const dataset = await run.hasher.tree(e.dataset.root);
  return run.stage(
    'evaluate',
    { bundles: encoders.map((b) => run.state.stages[`pretrain ${b.name}`]!.key), evaluate: e, dataset },
    async (requestId) => {
      const evaluate = run.client(evaluator.EvaluatorServiceClient, 'evaluator');
      const response = await unary<evaluator.StartEvaluationRequest, evaluator.StartEvaluationResponse>(
        evaluate,
        'startEvaluation',
        {
          requestId,
          config: evaluator.EvaluationConfig.fromPartial({
            encoders: evaluatedEncoders(config, encoders),
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
          outputPrefix: run.jobPrefix('evaluate', requestId),
        },
      );
      const job = await run.follow('evaluate', 'evaluator', response.job);
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
}

/** The pre-trained encoders as the evaluator takes them, and the random-init baseline unless switched off. */
function evaluatedEncoders(config: ResolvedPipelineConfig, encoders: PretrainedEncoder[]): evaluator.Encoder[] {
  const out = encoders.map((b) =>
    evaluator.Encoder.fromPartial({
      name: b.name,
      bundle: b.bundle,
      bundleSha256: b.bundleSha256,
      pretrainingData: b.source,
    }),
  );
  if (config.evaluate.baseline) {
    const imageEncoder = pretrainBase(config).imageEncoder;
    out.push(
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
  }
  return out;
}

/** 7. export (optional): the synthetic pairs as a shareable WebDataset bundle with its card. */
export async function exportSynthetic(
  run: PipelineRun,
  anonymized: StageRecord,
  synthesized: StageRecord,
): Promise<StageRecord> {
  const { config, store } = run;
  const x = config.export!;
  return run.stage('export', { synthesized: synthesized.key, export: x }, async () => {
    const result = await exportDataset({
      store,
      pairs: [synthesized.outputs.synthesizer_pairs!],
      reports: anonymized.outputs.anonymized,
      out: store,
      outPrefix: `${run.prefix}dataset/`,
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
      outputs: { bundle: `${run.prefix}dataset/`, card: result.cardKey },
      summary: { samples: result.samples, shards: result.shards.length },
    };
  });
}

/**
 * 8. report: the evaluator's results with the run's summary and real vs synthetic images side by
 * side, into the store and the local report file. Written on every run (state.json does not record it).
 */
export async function writeReport(
  run: PipelineRun,
  evaluated: StageRecord,
  pairs: PairStages,
): Promise<EvaluationResults> {
  const { config, store } = run;
  const results = JSON.parse(
    (await getBuffer(store, evaluated.outputs.results!)).toString('utf8'),
  ) as EvaluationResults;
  run.emitStageStart('report');
  const started = Date.now();
  const html = renderPipelineReport({
    config,
    results,
    stages: run.state.stages,
    grid: await gridPairs(store, pairs, 8),
  });
  await store.put(`${run.prefix}report.html`, html, { mediaType: 'text/html' });
  fs.mkdirSync(path.dirname(config.report), { recursive: true });
  fs.writeFileSync(config.report, html);
  run.emit({
    type: 'stage-done',
    stage: 'report',
    seconds: (Date.now() - started) / 1000,
    skipped: false,
    summary: { file: config.report },
  });
  return results;
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
  return sha256Hex(lines.join(''));
}

/** The first `count` reports with both a real and a synthetic image, for the side-by-side grid. */
async function gridPairs(store: ArtifactStore, pairs: PairStages, count: number): Promise<GridPair[]> {
  const read = async (record: StageRecord | undefined) =>
    new Map(record ? (await readPairs(store, record)).map((p) => [p.id, p]) : []);
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
