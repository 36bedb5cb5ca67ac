import { common, pretrainer } from '@medsyn/proto';
import { RpcError, invalidArgument, toProtoJob, type ServiceContext, type ServiceSpec } from '@medsyn/service-kit';
import { JobFailure, verifyJobInputs, type JobContext, type JobInput } from '@medsyn/jobs';
import { getBuffer, keyOf, verifyArtifactRef, type ArtifactRef, type ArtifactStore } from '@medsyn/artifact-store';
import { PretrainingConfigError, parsePretrainingConfig, type PretrainingConfig } from '@medsyn/config';
import { PretrainingCancelledError, RUN_FILES, runPretraining, type PretrainingResult } from '@medsyn/vlp';
import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Ports a local setup uses when GRPC_PORT / METRICS_PORT are not set. */
export const PRETRAINER_DEFAULTS = { grpcPort: 50053, metricsPort: 9463 };

/** The job kind of a pre-training run. */
export const PRETRAIN_JOB = 'pretrain';

/** What a pretrain job persists to resume after a restart. */
interface PretrainSpec {
  config: PretrainingConfig;
  prefix: string;
  /** The inputs named with a sha256, checked again when the job runs (absent when none was). */
  inputs?: JobInput[];
}

/**
 * A ts-proto message as the plain object parsePretrainingConfig reads: proto3 leaves unset
 * scalars at 0 / "" / false, which here mean "the default", so they are dropped, except
 * batch_size (0 is an error, not a default).
 */
function plain(value: unknown, key = ''): unknown {
  if (Array.isArray(value)) return value.map((v) => plain(v));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = plain(v, k);
      if (p !== undefined) out[k] = p;
    }
    return out;
  }
  if (key !== 'batchSize' && (value === 0 || value === '' || value === false)) return undefined;
  return value;
}

/** The artifacts a request names, by field: the pair manifests (which must exist: training and held-out), initial weights and a vocabulary. */
function inputRefs(
  config: pretrainer.PretrainingConfig,
): { field: string; ref: common.ArtifactRef; manifest: boolean }[] {
  const optional = (field: string, ref: common.ArtifactRef | undefined) =>
    ref?.uri ? [{ field, ref, manifest: false }] : [];
  return [
    ...(config.data?.realPairs ?? []).map((ref, i) => ({ field: `config.data.real_pairs[${i}]`, ref, manifest: true })),
    ...(config.data?.syntheticPairs ?? []).map((ref, i) => ({
      field: `config.data.synthetic_pairs[${i}]`,
      ref,
      manifest: true,
    })),
    ...(config.data?.retrievalPairs?.uri
      ? [{ field: 'config.data.retrieval_pairs', ref: config.data.retrievalPairs, manifest: true }]
      : []),
    ...optional('config.image_encoder.init', config.imageEncoder?.init),
    ...optional('config.text_encoder.init', config.textEncoder?.init),
    ...optional('config.text_encoder.vocab', config.textEncoder?.vocab),
  ];
}

/** Validates a StartPretraining request into the job's spec; INVALID_ARGUMENT naming the field otherwise. */
async function startSpec(store: ArtifactStore, request: pretrainer.StartPretrainingRequest): Promise<PretrainSpec> {
  if (!request.config) throw invalidArgument('config', 'is required');
  let config: PretrainingConfig;
  try {
    config = parsePretrainingConfig(plain(request.config));
  } catch (error) {
    if (error instanceof PretrainingConfigError)
      throw invalidArgument(`config.${error.field}`, error.message.slice(error.field.length + 2));
    throw error;
  }
  // Missing manifests, and inputs that are not the bytes their sha256 names, fail the call, not a job minutes later.
  const inputs: JobInput[] = [];
  for (const { field, ref, manifest } of inputRefs(request.config)) {
    if (!manifest && !ref.sha256) continue;
    let key: string;
    let found = false;
    try {
      key = keyOf(store, ref.uri);
      found = Boolean(await store.stat(key));
    } catch {
      throw invalidArgument(field, `${ref.uri} is not in the artifact store (${store.rootUri})`);
    }
    if (manifest && !found) throw invalidArgument(field, `manifest ${ref.uri} not found`);
    await verifyArtifactRef(store, ref, field, key);
    if (ref.sha256) inputs.push({ field, uri: ref.uri, sha256: ref.sha256, key });
  }
  const prefix = (request.outputPrefix || `pretrainer/${request.requestId}`).replace(/\/+$/, '');
  if (prefix.split('/').some((part) => part === '..' || part === ''))
    throw invalidArgument('output_prefix', 'must be a relative store prefix without ".." or empty segments');
  return { config, prefix, ...(inputs.length ? { inputs } : {}) };
}

/** Training metrics (Prometheus conventions; the kit's GPU sampler adds utilisation on GPU nodes). */
function trainingMetrics(registry: Registry, prefix: string) {
  const labelNames = ['method'];
  return {
    steps: new Counter({
      name: `${prefix}training_steps_total`,
      help: 'Optimizer steps done.',
      labelNames,
      registers: [registry],
    }),
    stepSeconds: new Histogram({
      name: `${prefix}training_step_seconds`,
      help: 'Compute time of one training step.',
      labelNames,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    samplesPerSecond: new Gauge({
      name: `${prefix}training_samples_per_second`,
      help: 'Training throughput of the running job.',
      labelNames,
      registers: [registry],
    }),
    loss: new Gauge({
      name: `${prefix}training_loss`,
      help: 'Loss of the last step.',
      labelNames,
      registers: [registry],
    }),
    dataWait: new Gauge({
      name: `${prefix}training_data_wait_ratio`,
      help: 'Share of wall time the trainer waited for data.',
      labelNames,
      registers: [registry],
    }),
  };
}
type TrainingMetrics = ReturnType<typeof trainingMetrics>;

/** The job: runs (or resumes) the pre-training run and records its artifacts. */
function pretrainRunner(store: ArtifactStore, metrics?: TrainingMetrics) {
  return async (ctx: JobContext): Promise<void> => {
    const { config, prefix, inputs } = ctx.spec as PretrainSpec;
    await verifyJobInputs(store, inputs ?? []);
    ctx.report({ phase: 'preparing data', unit: 'steps' });
    let result: PretrainingResult;
    try {
      result = await runPretraining({
        store,
        config,
        prefix,
        signal: ctx.signal,
        onProgress: (p) => {
          const labels = { method: config.method };
          metrics?.steps.inc(labels);
          metrics?.stepSeconds.observe(labels, p.stepSeconds);
          metrics?.samplesPerSecond.set(labels, p.samplesPerSecond);
          metrics?.loss.set(labels, p.loss);
          metrics?.dataWait.set(labels, p.dataWaitFraction);
          ctx.report({
            completed: p.step,
            total: p.totalSteps,
            unit: 'steps',
            ratePerSecond: p.samplesPerSecond / config.batchSize,
            etaSeconds: p.etaSeconds,
            phase: `epoch ${p.epoch}/${p.epochs}`,
            failed: p.skippedRecords,
            metrics: {
              loss: p.loss,
              ...Object.fromEntries(Object.entries(p.parts).map(([k, v]) => [`loss_${k}`, v])),
              learning_rate: p.learningRate,
              samples_per_second: p.samplesPerSecond,
              step_seconds: p.stepSeconds,
              data_wait_fraction: p.dataWaitFraction,
              epoch: p.epoch,
            },
          });
        },
      });
    } catch (error) {
      if (error instanceof PretrainingCancelledError) return; // the registry records cancelled / shutdown
      if (error instanceof PretrainingConfigError)
        throw new JobFailure(error.message, 'INVALID_ARGUMENT', `config.${error.field}`);
      throw error;
    }
    for (const ref of Object.values(result.refs)) ctx.addOutput(ref);
    ctx.report({
      phase: 'done',
      metrics: { final_loss: result.finalLoss, ...(result.retrieval ? { retrieval_top1: result.retrieval.top1 } : {}) },
    });
  };
}

const toRef = (ref: ArtifactRef): common.ArtifactRef => ({
  uri: ref.uri,
  sha256: ref.sha256,
  sizeBytes: ref.sizeBytes,
  mediaType: ref.mediaType,
});

async function result(
  store: ArtifactStore,
  ctx: ServiceContext,
  jobId: string,
): Promise<pretrainer.GetPretrainingResultResponse> {
  if (!jobId) throw invalidArgument('job_id', 'is required');
  const job = ctx.jobs.get(jobId);
  if (job.kind !== PRETRAIN_JOB) throw invalidArgument('job_id', `${jobId} is not a pre-training job`);
  if (job.state !== 'succeeded')
    throw new RpcError(
      grpc.status.FAILED_PRECONDITION,
      `job ${jobId} is ${job.state}; results exist once it succeeded`,
      'job_id',
    );
  const { prefix } = job.spec as PretrainSpec;
  const run = JSON.parse(
    (await getBuffer(store, `${prefix}/${RUN_FILES.result}`)).toString('utf8'),
  ) as PretrainingResult;
  return {
    imageEncoder: toRef(run.refs.imageEncoder),
    textEncoder: toRef(run.refs.textEncoder),
    tokenizer: toRef(run.refs.tokenizer),
    config: toRef(run.refs.config),
    trainingLog: toRef(run.refs.trainingLog),
    checkpoint: toRef(run.refs.checkpoint),
    lineage: {
      inputs: run.lineage.inputs.map((i) => ({
        uri: i.uri,
        sha256: i.sha256,
        sizeBytes: 0,
        mediaType: 'application/x-ndjson',
      })),
      configSha256: run.lineage.configSha256,
      codeVersion: run.lineage.codeVersion,
    },
    encoderManifest: toRef(run.refs.encoderManifest),
    bundlePrefix: run.bundlePrefix,
    summary: {
      steps: run.steps,
      finalLoss: run.finalLoss,
      retrievalTop1: run.retrieval?.top1 ?? 0,
      retrievalChance: run.retrieval?.chance ?? 0,
      validationPairs: run.retrieval?.pairs ?? 0,
      skippedRecords: run.skippedRecords,
      samplesPerSecond: run.samplesPerSecond,
      dataWaitFraction: run.dataWaitFraction,
    },
  };
}

/** The pretrainer: ConVIRT, GLoRIA and MGCA on image-report pairs, as resumable jobs. */
export function pretrainerService(env: NodeJS.ProcessEnv = process.env): ServiceSpec {
  let store: ArtifactStore | undefined;
  let metrics: TrainingMetrics | undefined;
  return {
    name: 'pretrainer',
    defaults: PRETRAINER_DEFAULTS,
    env,
    // register() runs before the registry resumes unfinished jobs, so the store is set by then.
    jobRunners: { [PRETRAIN_JOB]: (ctx) => pretrainRunner(store!, metrics)(ctx) },
    register(ctx) {
      store = ctx.store;
      metrics = trainingMetrics(ctx.metrics.registry, ctx.metrics.prefix);
      const implementation: pretrainer.PretrainerServiceServer = {
        startPretraining: async (call, callback) => {
          if (!call.request.requestId)
            throw invalidArgument('request_id', 'is required (an idempotency key of your choice)');
          const spec = await startSpec(ctx.store, call.request);
          const job = await ctx.jobs.start({
            requestId: call.request.requestId,
            kind: PRETRAIN_JOB,
            spec,
            outputPrefix: `${spec.prefix}/`,
          });
          callback(null, { job: toProtoJob(job) });
        },
        getPretrainingResult: async (call, callback) =>
          callback(null, await result(ctx.store, ctx, call.request.jobId)),
      };
      ctx.addService(pretrainer.PretrainerServiceService, implementation);
    },
  };
}
