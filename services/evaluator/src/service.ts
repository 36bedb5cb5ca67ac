import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FileArtifactStore,
  canonicalDigest,
  claimedDigest,
  getBuffer,
  verifyArtifactRef,
  type ArtifactRef,
  type ArtifactStore,
} from '@medsyn/artifact-store';
import { EvaluationConfigError, parseEvaluationConfig, type EvaluationConfig, type TaskName } from '@medsyn/config';
import { renderReport, type EvaluationResults } from '@medsyn/evaluation-report';
import { DatasetError, EncoderBundleError, isAllowedDatasetRoot, runEvaluation } from '@medsyn/evaluation';
import { JobFailure, verifyJobInputs, type JobContext, type JobInput } from '@medsyn/jobs';
import { evaluator } from '@medsyn/proto';
import { RpcError, invalidArgument, toProtoJob, type ServiceSpec } from '@medsyn/service-kit';
import { z } from 'zod';

/** Ports a local setup uses when GRPC_PORT / METRICS_PORT are not set. */
export const EVALUATOR_DEFAULTS = { grpcPort: 50054, metricsPort: 9464 };

/** Evaluator settings beyond the kit's (docs/configuration.md). */
export const EVALUATOR_CONFIG = {
  /** Segmentation and detection runs a job trains at once on CPU, each in a worker thread (default: one per core). */
  EVALUATOR_PARALLEL_RUNS: z.coerce
    .number()
    .int('must be an integer')
    .min(1, 'must be >= 1')
    .max(256, 'must be <= 256')
    .optional(),
};

const JOB_KIND = 'evaluation';
// Read at start; the file sits one level above both src/ and dist/.
const CODE_VERSION = `@medsyn/evaluator ${(JSON.parse(fs.readFileSync(path.join(__dirname, '../package.json'), 'utf8')) as { version: string }).version}`;

const TASK_NAMES: Partial<Record<evaluator.Task, TaskName>> = {
  [evaluator.Task.TASK_CLASSIFICATION]: 'classification',
  [evaluator.Task.TASK_SEGMENTATION]: 'segmentation',
  [evaluator.Task.TASK_DETECTION]: 'detection',
  [evaluator.Task.TASK_ZERO_SHOT]: 'zero_shot',
};
const TASK_ENUMS = Object.fromEntries(
  Object.entries(TASK_NAMES).map(([k, v]) => [v, Number(k) as evaluator.Task]),
) as Record<TaskName, evaluator.Task>;

/** What a job persists: the domain config, where its outputs go, and the digests its inputs were accepted with. */
interface EvaluationJobSpec {
  config: EvaluationConfig;
  outputPrefix: string;
  /** Checked again when the job runs; absent when the request claimed none. */
  inputs?: ClaimedInput[];
}

/** An input the request names with a sha256; uriField is the request field that gives its location. */
type ClaimedInput = JobInput & { uriField: string };

/** Protobuf request -> the evaluation lib's config; errors name the request field. */
export function toEvaluationConfig(request: evaluator.StartEvaluationRequest): EvaluationConfig {
  const c = request.config;
  if (!c) throw invalidArgument('config', 'is required');
  if (!c.dataset) throw invalidArgument('config.dataset', 'is required');
  if (!c.dataset.uri.startsWith('file://'))
    throw invalidArgument('config.dataset.uri', 'must be a file:// folder (datasets are read from local files)');
  let datasetRoot: string;
  try {
    datasetRoot = fileURLToPath(c.dataset.uri);
  } catch {
    throw invalidArgument('config.dataset.uri', 'must be a file:///absolute/path URL on this host');
  }
  const tasks = c.tasks.map((t, i) => {
    const name = TASK_NAMES[t];
    if (!name) throw invalidArgument(`config.tasks[${i}]`, 'must be a known task (not TASK_UNSPECIFIED)');
    return name;
  });
  const config: EvaluationConfig = {
    encoders: c.encoders.map((e, i) => {
      const bundle = e.bundle || (e.imageEncoder?.uri ? e.imageEncoder.uri.replace(/\/[^/]*$/, '') : '');
      if (!bundle && !e.baseline)
        throw invalidArgument(
          `config.encoders[${i}].bundle`,
          'is required (or image_encoder inside a bundle, or baseline)',
        );
      return {
        name: e.name,
        pretraining_data: e.pretrainingData || undefined,
        ...(e.baseline && !bundle
          ? {
              baseline: {
                architecture: e.baseline.architecture as 'resnet18',
                size: e.baseline.size,
                width: e.baseline.width || undefined,
                seed: Number(e.baseline.seed),
              },
            }
          : { bundle }),
      };
    }),
    dataset: { format: c.dataset.format, root: datasetRoot, options: c.dataset.options },
    tasks,
    label_fractions: c.labelFractions.length ? c.labelFractions : undefined,
    seeds: c.seeds.length ? c.seeds.map(Number) : undefined,
    split_seed: Number(c.splitSeed),
    max_images: c.maxImages || undefined,
    report_samples: c.reportSamples || undefined,
    execution_provider: (c.executionProvider || 'cpu') as EvaluationConfig['execution_provider'],
    epochs: c.epochs ? { classification: c.epochs, segmentation: c.epochs, detection: c.epochs } : undefined,
  };
  if (config.encoders.some((e) => e.baseline) && c.imageSize)
    throw invalidArgument(
      'config.image_size',
      'is set by each encoder bundle (baseline.size for baselines); leave it 0',
    );
  try {
    parseEvaluationConfig(JSON.parse(JSON.stringify(config)));
  } catch (error) {
    if (error instanceof EvaluationConfigError)
      throw invalidArgument(`config.${error.field}`, error.message.slice(error.field.length + 2));
    throw error;
  }
  return JSON.parse(JSON.stringify(config)) as EvaluationConfig;
}

/**
 * The folders datasets may be read from: EVALUATOR_DATASET_ROOTS (absolute paths, colon-separated),
 * else the service's working directory and the artifact store's folder when it is a local one.
 */
export function datasetRoots(env: NodeJS.ProcessEnv, store: ArtifactStore): string[] {
  const configured = env.EVALUATOR_DATASET_ROOTS;
  if (configured !== undefined && configured.trim() !== '') {
    const roots = configured.split(':').filter(Boolean);
    const relative = roots.find((r) => !path.isAbsolute(r));
    if (relative !== undefined) throw new Error(`EVALUATOR_DATASET_ROOTS: "${relative}" is not an absolute path`);
    return roots.map((r) => path.resolve(r));
  }
  return [process.cwd(), ...(store instanceof FileArtifactStore ? [store.root] : [])];
}

/** PERMISSION_DENIED naming config.dataset.uri unless the dataset folder is under a configured root. */
function checkDatasetRoot(config: EvaluationConfig, roots: readonly string[]): void {
  if (!isAllowedDatasetRoot(config.dataset.root, roots)) {
    throw new RpcError(
      grpc.status.PERMISSION_DENIED,
      'config.dataset.uri: is not under a dataset root this evaluator may read (EVALUATOR_DATASET_ROOTS)',
      'config.dataset.uri',
    );
  }
}

/**
 * The inputs a request names with a sha256: encoder files (image_encoder, text_encoder, tokenizer:
 * a file or a folder), an encoder's bundle folder (bundle_sha256, for the bundle the job reads)
 * and the dataset folder.
 */
function claimedInputs(request: evaluator.EvaluationConfig, config: EvaluationConfig): ClaimedInput[] {
  const inputs: ClaimedInput[] = [];
  for (const [i, encoder] of request.encoders.entries()) {
    for (const [name, ref] of [
      ['image_encoder', encoder.imageEncoder],
      ['text_encoder', encoder.textEncoder],
      ['tokenizer', encoder.tokenizer],
    ] as const) {
      const field = `config.encoders[${i}].${name}`;
      if (ref?.sha256) inputs.push({ field, uriField: `${field}.uri`, uri: ref.uri, sha256: ref.sha256 });
    }
    if (encoder.bundleSha256) {
      const field = `config.encoders[${i}].bundle`;
      const bundle = config.encoders[i]!.bundle;
      if (!bundle) throw invalidArgument(`${field}_sha256`, 'names no bundle (a baseline is built, not read)');
      claimedDigest({ uri: bundle, sha256: encoder.bundleSha256 }, field, `${field}_sha256`);
      inputs.push({ field, uriField: field, uri: bundle, sha256: encoder.bundleSha256 });
    }
  }
  if (request.dataset?.sha256) {
    claimedDigest(request.dataset, 'config.dataset');
    inputs.push({
      field: 'config.dataset',
      uriField: 'config.dataset.uri',
      uri: request.dataset.uri,
      sha256: request.dataset.sha256,
    });
  }
  return inputs;
}

/**
 * Checks one input against its claimed digest where the evaluator reads it: a key or URI in the
 * artifact store, or another `file://` path, read where it is but only under the dataset roots (a
 * mismatch names the digest found, which no request may learn of just any file on this host).
 */
async function verifyInput(store: ArtifactStore, input: ClaimedInput, roots: readonly string[]): Promise<void> {
  if (!input.uri.startsWith('file://') || input.uri.startsWith(`${store.rootUri}/`))
    return verifyArtifactRef(store, input, input.field);
  let file: string;
  try {
    file = fileURLToPath(input.uri.replace(/\/+$/, ''));
  } catch {
    throw invalidArgument(input.uriField, 'must be a file:///absolute/path URL on this host');
  }
  if (!isAllowedDatasetRoot(file, roots)) {
    throw new RpcError(
      grpc.status.PERMISSION_DENIED,
      `${input.uriField}: is not under a folder this evaluator may read (EVALUATOR_DATASET_ROOTS), so its sha256 cannot be checked`,
      input.uriField,
    );
  }
  await verifyArtifactRef(new FileArtifactStore(path.dirname(file)), input, input.field, path.basename(file));
}

/** Runs one evaluation job: the comparison, then results.json, splits.json and report.html into the store. */
async function runEvaluationJob(
  ctx: JobContext,
  store: ArtifactStore,
  roots: readonly string[],
  parallelRuns: number | undefined,
): Promise<void> {
  const { config, outputPrefix, inputs } = ctx.spec as EvaluationJobSpec;
  // Checked again here: a job resumed after a restart runs under the roots configured now.
  if (!isAllowedDatasetRoot(config.dataset.root, roots))
    throw new JobFailure(
      'is not under a dataset root this evaluator may read (EVALUATOR_DATASET_ROOTS)',
      'PERMISSION_DENIED',
      'config.dataset.uri',
    );
  // So are the digests: a job that waited in the queue, or resumes after a restart, reads its inputs as they are now.
  await verifyJobInputs(store, inputs ?? [], (input) => verifyInput(store, input, roots)).catch((error: unknown) => {
    throw error instanceof RpcError ? new JobFailure(error.message, grpc.status[error.code], error.field) : error;
  });
  try {
    const output = await runEvaluation(config, {
      store,
      signal: ctx.signal,
      parallelRuns,
      onProgress: (p) => ctx.report({ completed: p.completed, total: p.total, unit: 'runs', phase: p.phase }),
    });
    ctx.addOutput(
      await store.put(`${outputPrefix}results.json`, JSON.stringify(output.results, null, 1), {
        mediaType: 'application/json',
      }),
    );
    ctx.addOutput(
      await store.put(`${outputPrefix}splits.json`, JSON.stringify(output.splits), { mediaType: 'application/json' }),
    );
    ctx.addOutput(
      await store.put(`${outputPrefix}report.html`, renderReport(output.results), { mediaType: 'text/html' }),
    );
  } catch (error) {
    if (error instanceof EvaluationConfigError)
      throw new JobFailure(error.message, 'INVALID_ARGUMENT', `config.${error.field}`);
    if (error instanceof DatasetError) throw new JobFailure(error.message, 'INVALID_ARGUMENT', 'config.dataset');
    if (error instanceof EncoderBundleError) throw new JobFailure(error.message, 'INVALID_ARGUMENT', 'config.encoders');
    throw error;
  }
}

function toProtoResult(
  results: EvaluationResults,
  outputs: ArtifactRef[],
  spec: EvaluationJobSpec,
): evaluator.GetEvaluationResultResponse {
  const byName = (name: string) => outputs.find((o) => o.uri.endsWith(`/${name}`));
  return {
    metrics: results.metrics.map((m) => ({
      encoder: m.encoder,
      task: TASK_ENUMS[m.task],
      labelFraction: m.label_fraction,
      metric: m.metric,
      mean: m.mean,
      std: m.std,
      perSeed: m.per_seed,
    })),
    results: byName('results.json'),
    report: byName('report.html'),
    lineage: {
      inputs: results.encoders.flatMap((e) =>
        Object.entries(e.digests).map(([file, sha256]) => ({
          uri: `${e.name}/${file}`,
          sha256,
          sizeBytes: 0,
          mediaType: '',
        })),
      ),
      configSha256: canonicalDigest(spec.config),
      codeVersion: CODE_VERSION,
    },
  };
}

/** The evaluator: frozen-encoder classification, segmentation, detection and zero-shot. */
export function evaluatorService(env: NodeJS.ProcessEnv = process.env): ServiceSpec<typeof EVALUATOR_CONFIG> {
  // The runner needs the store, which the kit opens before register() and before resuming jobs.
  let store: ArtifactStore | undefined;
  let roots: string[] = [];
  let parallelRuns: number | undefined;
  return {
    name: 'evaluator',
    defaults: EVALUATOR_DEFAULTS,
    env,
    extraConfig: EVALUATOR_CONFIG,
    jobRunners: { [JOB_KIND]: (ctx) => runEvaluationJob(ctx, store!, roots, parallelRuns) },
    register({ addService, jobs, store: kitStore, config }) {
      store = kitStore;
      parallelRuns = config.service.EVALUATOR_PARALLEL_RUNS;
      roots = datasetRoots(env, kitStore);
      const implementation: evaluator.EvaluatorServiceServer = {
        startEvaluation: async (call, callback) => {
          const config = toEvaluationConfig(call.request);
          checkDatasetRoot(config, roots);
          const inputs = claimedInputs(call.request.config!, config);
          // A dataset folder can hold a whole CheXpert: it is hashed once, when the job runs (runEvaluationJob), not in this call.
          for (const input of inputs) if (input.field !== 'config.dataset') await verifyInput(kitStore, input, roots);
          const requestId = call.request.requestId;
          const outputPrefix = (
            call.request.outputPrefix || `evaluator/${requestId.replace(/[^A-Za-z0-9._-]/g, '_')}/`
          ).replace(/\/?$/, '/');
          const spec: EvaluationJobSpec = { config, outputPrefix, ...(inputs.length ? { inputs } : {}) };
          callback(null, { job: toProtoJob(await jobs.start({ requestId, kind: JOB_KIND, spec, outputPrefix })) });
        },
        getEvaluationResult: async (call, callback) => {
          if (!call.request.jobId) throw invalidArgument('job_id', 'is required');
          const record = jobs.get(call.request.jobId);
          if (record.state !== 'succeeded')
            throw new RpcError(
              grpc.status.FAILED_PRECONDITION,
              `job ${record.jobId} is ${record.state}; results exist once it has succeeded`,
              'job_id',
            );
          const spec = record.spec as EvaluationJobSpec;
          const results = JSON.parse(
            (await getBuffer(kitStore, `${spec.outputPrefix}results.json`)).toString('utf8'),
          ) as EvaluationResults;
          callback(null, toProtoResult(results, record.outputs, spec));
        },
      };
      addService(evaluator.EvaluatorServiceService, implementation);
    },
  };
}
