import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge } from 'prom-client';
import { z } from 'zod';
import { DigestMismatchError, expectDigest, verifyArtifactRef } from '@medsyn/artifact-store';
import {
  classifierCheck,
  SynthesizeDatasetInputError,
  TextToImageModel,
  ExecutionProviderError,
  fetchModelDirectory,
  GenerationInputError,
  imageStatisticsCheck,
  ModelCache,
  ModelCacheFullError,
  ModelLoadError,
  QualityGate,
  randomSeed,
  synthesizeDatasetShard,
  storePrefixOf,
  synthesize,
  type SynthesizeDatasetSpec,
  type QualityCheck,
  type SchedulerKind,
  type SynthesisItem,
} from '@medsyn/diffusion';
import { JobFailure, type JobContext } from '@medsyn/jobs';
import { synthesizer } from '@medsyn/proto';
import { invalidArgument, RpcError, toProtoJob, type ServiceContext, type ServiceSpec } from '@medsyn/service-kit';

/** Ports a local setup uses when GRPC_PORT / METRICS_PORT are not set. */
export const SYNTHESIZER_DEFAULTS = { grpcPort: 50052, metricsPort: 9462 };

const DATASET_JOB = 'synthesize_dataset';

const optionalNumber = z.coerce.number().optional();
/** The synthesizer's own environment (docs/synthesizer.md). */
export const SYNTHESIZER_CONFIG = {
  /** The model in the ONNX export layout: a local directory... */
  MODEL_DIR: z.string().min(1).optional(),
  /** ...or a prefix in the artifact store (URI), fetched into MODEL_CACHE_DIR at start. */
  MODEL_URI: z.string().min(1).optional(),
  MODEL_CACHE_DIR: z.string().min(1).default(path.join(os.tmpdir(), 'medsyn-models')),
  /** The only store prefix a request's `model.uri` may name (MODEL_URI, the operator's, may be anywhere). */
  MODELS_PREFIX: z
    .string()
    .regex(/^([A-Za-z0-9._-]+\/)+$/, 'must be a store key prefix ending in "/"')
    .default('models/'),
  /** Request-named models kept loaded (and on disk) at once; the least recently used idle one is evicted. */
  MODEL_CACHE_MAX_MODELS: z.coerce.number().int().min(1).max(64).default(2),
  /** Synthesize requests waiting across all streams; one more is answered RESOURCE_EXHAUSTED. */
  MAX_QUEUE_DEPTH: z.coerce.number().int().min(1).max(100000).default(64),
  EXECUTION_PROVIDER: z.enum(['cpu', 'cuda', 'webgpu']).default('cpu'),
  INTRA_OP_THREADS: z.coerce.number().int().min(0).default(0),
  /**
   * onnxruntime's CPU memory arena: "false" frees each run's activations instead of keeping the peak allocated
   * (a RoentGen-size model on CPU: peak RSS 6.6 GiB instead of 9.2, docs/synthesizer.md), at some speed.
   */
  CPU_MEMORY_ARENA: z.enum(['true', 'false']).default('true'),
  GUIDANCE_SCALE: optionalNumber,
  NUM_INFERENCE_STEPS: z.coerce.number().int().min(1).optional(),
  /** Images denoised together (requests with equal steps, size and scheduler). */
  MAX_BATCH: z.coerce.number().int().min(1).max(64).default(4),
  /** The image-statistics check (blank, saturated, noise-like): on unless "false". */
  QUALITY_IMAGE_STATISTICS: z.enum(['true', 'false']).default('true'),
  /** An ONNX classifier for the gate, and the names of its output columns (comma-separated). */
  QUALITY_CLASSIFIER: z.string().min(1).optional(),
  QUALITY_CLASSIFIER_LABELS: z.string().optional(),
};

type Config = z.infer<z.ZodObject<typeof SYNTHESIZER_CONFIG>>;

const SCHEDULERS: Record<number, SchedulerKind | undefined> = {
  [synthesizer.Scheduler.SCHEDULER_PNDM]: 'pndm',
  [synthesizer.Scheduler.SCHEDULER_DDIM]: 'ddim',
  [synthesizer.Scheduler.SCHEDULER_EULER_ANCESTRAL]: 'euler_ancestral',
  [synthesizer.Scheduler.SCHEDULER_DPM_SOLVER_PP_2M]: 'dpm_solver_pp_2m',
};
const SCHEDULER_ENUM = Object.fromEntries(Object.entries(SCHEDULERS).map(([k, v]) => [v, Number(k)])) as Record<
  SchedulerKind,
  synthesizer.Scheduler
>;

/** Proto params -> domain request fields; `field` prefixes error field names. */
function toParams(
  params: synthesizer.GenerationParams | undefined,
  field: string,
): Omit<SynthesisItem, 'prompt' | 'seed'> & { seed?: number } {
  const p = params ?? synthesizer.GenerationParams.fromPartial({});
  const scheduler = p.scheduler === synthesizer.Scheduler.SCHEDULER_UNSPECIFIED ? undefined : SCHEDULERS[p.scheduler];
  if (p.scheduler !== synthesizer.Scheduler.SCHEDULER_UNSPECIFIED && !scheduler)
    throw invalidArgument(`${field}.scheduler`, `unknown scheduler ${p.scheduler}`);
  if (
    p.imageFormat !== 0 &&
    p.imageFormat !== synthesizer.ImageFormat.IMAGE_FORMAT_PNG_GRAY8 &&
    p.imageFormat !== synthesizer.ImageFormat.IMAGE_FORMAT_PNG_GRAY16
  ) {
    throw invalidArgument(`${field}.image_format`, `unknown image format ${p.imageFormat}`);
  }
  if (p.maxAttempts !== undefined && (p.maxAttempts < 1 || p.maxAttempts > 20))
    throw invalidArgument(`${field}.max_attempts`, `must be 1 to 20, got ${p.maxAttempts}`);
  if (p.seed !== undefined && (!Number.isSafeInteger(p.seed) || p.seed < 0))
    throw invalidArgument(`${field}.seed`, 'must be an integer from 0 to 2^53 - 1');
  return {
    negativePrompt: p.negativePrompt,
    guidanceScale: p.guidanceScale,
    numInferenceSteps: p.numInferenceSteps,
    height: p.height,
    width: p.width,
    scheduler,
    bitDepth: p.imageFormat === synthesizer.ImageFormat.IMAGE_FORMAT_PNG_GRAY16 ? 16 : 8,
    maxAttempts: p.maxAttempts,
    seed: p.seed,
  };
}

/** Domain errors -> gRPC errors naming the proto field. */
function toRpcError(error: unknown, fieldPrefix: string): unknown {
  if (error instanceof GenerationInputError)
    return invalidArgument(
      error.field === 'prompt' ? 'prompt' : `${fieldPrefix}.${error.field}`,
      error.message.slice(error.field.length + 2),
    );
  if (error instanceof SynthesizeDatasetInputError)
    return invalidArgument(error.field, error.message.slice(error.field.length + 2));
  if (error instanceof ModelLoadError)
    return new RpcError(grpc.status.FAILED_PRECONDITION, `model: ${error.message}`, 'model');
  if (error instanceof ExecutionProviderError) return new RpcError(grpc.status.FAILED_PRECONDITION, error.message);
  return error;
}

/** A request's model as a job keeps it: the folder's URI and, when the request gave one, its treeDigest. */
interface ModelRef {
  uri: string;
  sha256?: string;
}

const NO_MODEL = () =>
  new RpcError(
    grpc.status.FAILED_PRECONDITION,
    'no model configured: set MODEL_DIR (an export directory) or MODEL_URI (a store prefix) and restart',
  );

interface Pending {
  /** The Synthesize call that sent it: a cancelled call's requests leave the queue. */
  call: object;
  item: SynthesisItem;
  done: (result: Awaited<ReturnType<typeof synthesize>>[number] | Error) => void;
}

/**
 * The synthesizer: chest X-rays from prompts with a Stable-Diffusion-style ONNX export.
 * One model per process; Synthesize streams from every client share one batch queue.
 */
export function synthesizerService(env: NodeJS.ProcessEnv = process.env): ServiceSpec<typeof SYNTHESIZER_CONFIG> {
  let loadedModel: TextToImageModel | undefined;
  let gate: QualityGate | undefined;
  let ctxRef: ServiceContext<Config> | undefined;
  let modelRef: synthesizer.GetModelInfoResponse['model'];
  let models: ModelCache<{ model: TextToImageModel; dir: string }> | undefined;
  let defaultPrefix: string | undefined;
  const queue: Pending[] = [];
  let draining = false;
  let metrics:
    { images: Counter<'outcome'>; rejections: Counter<'reason'>; steps: Counter; queueDepth: Gauge } | undefined;

  /** The model a request names (held until `release`), or the loaded one; only under MODELS_PREFIX. */
  const modelFor = async (
    ref: { uri: string } | undefined,
    field: string,
  ): Promise<{ model: TextToImageModel; release: () => void }> => {
    const loaded = () => {
      if (!loadedModel) throw NO_MODEL();
      return { model: loadedModel, release: () => undefined };
    };
    if (!ref || !ref.uri || ref.uri === modelRef?.uri) return loaded();
    const ctx = ctxRef!;
    let prefix: string;
    try {
      prefix = storePrefixOf(ctx.store, ref.uri);
    } catch {
      throw invalidArgument(`${field}.uri`, "is not in this service's artifact store");
    }
    if (prefix === defaultPrefix) return loaded();
    const allowed = ctx.config.service.MODELS_PREFIX;
    if (!prefix.startsWith(allowed) || prefix === allowed) {
      throw new RpcError(
        grpc.status.PERMISSION_DENIED,
        `${field}.uri: models are read only from under the store prefix "${allowed}" (MODELS_PREFIX)`,
        `${field}.uri`,
      );
    }
    try {
      const { model: cached, release } = await models!.acquire(prefix);
      return { model: cached.model, release };
    } catch (error) {
      if (error instanceof ModelCacheFullError)
        throw new RpcError(
          grpc.status.RESOURCE_EXHAUSTED,
          `${field}.uri: ${error.message} (MODEL_CACHE_MAX_MODELS); retry when a job finishes`,
          `${field}.uri`,
        );
      throw error;
    }
  };

  // One batch at a time from the shared queue: batching across streams, no CPU oversubscription.
  const drain = async () => {
    if (draining) return;
    draining = true;
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, ctxRef!.config.service.MAX_BATCH);
        metrics?.queueDepth.set(queue.length);
        const results = await synthesize(
          loadedModel!,
          batch.map((p) => p.item),
          {
            gate,
            maxBatch: batch.length,
            onStep: (images) => metrics?.steps.inc(images),
          },
        ).catch((error: Error) => error);
        batch.forEach((p, i) => p.done(results instanceof Error ? results : results[i]!));
      }
    } finally {
      draining = false;
    }
  };

  const countImage = (accepted: boolean, rejections: Record<string, number>) => {
    metrics?.images.inc({ outcome: accepted ? 'accepted' : 'rejected' });
    for (const [reason, n] of Object.entries(rejections)) metrics?.rejections.inc({ reason }, n);
  };

  /** The model a request names, checked against its digest; the caller releases it. */
  const verifiedModelFor = async (
    ref: ModelRef | undefined,
    field: string,
  ): Promise<{ model: TextToImageModel; release: () => void }> => {
    const held = await modelFor(ref, field);
    try {
      // The digest of the files loaded, not of the store's copy: the model in memory is what generates.
      if (ref) expectDigest({ uri: ref.uri, sha256: ref.sha256 ?? '' }, field, held.model.info.digest);
    } catch (error) {
      held.release();
      throw error;
    }
    return held;
  };

  const runDataset = async (job: JobContext) => {
    const spec = job.spec as SynthesizeDatasetSpec & { model?: ModelRef };
    // Checked again here: a job resumed after a restart, or after its model was evicted, loads it anew.
    const { model, release } = await verifiedModelFor(spec.model, 'model').catch((error: unknown) => {
      throw error instanceof DigestMismatchError
        ? new JobFailure(error.message, 'FAILED_PRECONDITION', error.field)
        : error;
    });
    try {
      await runShard(job, model, spec);
    } finally {
      release();
    }
  };

  const runShard = async (job: JobContext, model: TextToImageModel, spec: SynthesizeDatasetSpec) => {
    const ctx = ctxRef!;
    const result = await synthesizeDatasetShard(ctx.store, model, spec, {
      gate,
      maxBatch: ctx.config.service.MAX_BATCH,
      signal: job.signal,
      onImage: countImage,
      onProgress: (p) =>
        job.report({
          completed: p.completed,
          total: p.total,
          unit: 'images',
          phase: 'generating',
          failed: p.rejected,
          metrics: {
            accepted: p.accepted,
            rejected: p.rejected,
            invalid_prompts: p.invalid,
            ...Object.fromEntries(Object.entries(p.rejections).map(([k, v]) => [`rejections_${k}`, v])),
          },
        }),
    });
    job.addOutput(result.pairs);
    job.report({ phase: 'done' });
  };

  return {
    name: 'synthesizer',
    defaults: SYNTHESIZER_DEFAULTS,
    env,
    extraConfig: SYNTHESIZER_CONFIG,
    jobRunners: { [DATASET_JOB]: runDataset },
    async register(ctx) {
      ctxRef = ctx;
      const config = ctx.config.service;
      models = new ModelCache({
        maxModels: config.MODEL_CACHE_MAX_MODELS,
        load: async (prefix) => {
          const dir = await fetchModelDirectory(ctx.store, prefix, config.MODEL_CACHE_DIR);
          return { model: await loadModel(dir, config), dir };
        },
        evict: async (prefix, { model: evicted, dir }) => {
          ctx.logger.info({ prefix }, 'evicting a model from the cache');
          await evicted.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      });
      const { prefix, registry } = ctx.metrics;
      metrics = {
        images: new Counter({
          name: `${prefix}images_total`,
          help: 'Images finished, by quality-gate outcome.',
          labelNames: ['outcome'],
          registers: [registry],
        }),
        rejections: new Counter({
          name: `${prefix}quality_rejections_total`,
          help: 'Quality-gate rejections, by reason.',
          labelNames: ['reason'],
          registers: [registry],
        }),
        steps: new Counter({
          name: `${prefix}denoising_steps_total`,
          help: 'UNet evaluations times images in the batch.',
          registers: [registry],
        }),
        queueDepth: new Gauge({
          name: `${prefix}queue_depth`,
          help: 'Synthesize requests waiting for a batch.',
          registers: [registry],
        }),
      };
      if (config.MODEL_DIR || config.MODEL_URI) {
        if (!config.MODEL_DIR) defaultPrefix = storePrefixOf(ctx.store, config.MODEL_URI!);
        const dir = config.MODEL_DIR ?? (await fetchModelDirectory(ctx.store, defaultPrefix!, config.MODEL_CACHE_DIR));
        loadedModel = await loadModel(dir, config);
        modelRef = {
          uri: config.MODEL_URI ?? `file://${path.resolve(dir)}`,
          sha256: loadedModel.info.digest,
          sizeBytes: 0,
          mediaType: 'application/vnd.medsyn.diffusion-pipeline',
        };
      } else {
        // Starts (health, jobs) so a local `npm run up` works; generation RPCs say what is missing.
        ctx.logger.warn('no model configured: set MODEL_DIR or MODEL_URI; generation RPCs answer FAILED_PRECONDITION');
      }
      const checks: QualityCheck[] = [];
      if (config.QUALITY_IMAGE_STATISTICS === 'true') checks.push(imageStatisticsCheck());
      if (config.QUALITY_CLASSIFIER) {
        if (!fs.existsSync(config.QUALITY_CLASSIFIER))
          throw new ModelLoadError(`QUALITY_CLASSIFIER: ${config.QUALITY_CLASSIFIER} not found`);
        checks.push(
          await classifierCheck({
            modelPath: config.QUALITY_CLASSIFIER,
            labels: (config.QUALITY_CLASSIFIER_LABELS ?? '')
              .split(',')
              .map((l) => l.trim())
              .filter(Boolean),
            executionProvider: config.EXECUTION_PROVIDER,
          }),
        );
      }
      gate = new QualityGate(checks);
      if (loadedModel)
        ctx.logger.info(
          {
            model: loadedModel.info.digest,
            architecture: loadedModel.info.architecture,
            unetDtype: loadedModel.info.unetDtype,
            provider: loadedModel.info.executionProvider,
            checks: checks.map((c) => c.name),
          },
          'model loaded',
        );

      const implementation: synthesizer.SynthesizerServiceServer = {
        getModelInfo: (_call, callback) => {
          if (!loadedModel) throw NO_MODEL();
          const info = loadedModel.info;
          callback(null, {
            model: modelRef,
            architecture: info.architecture,
            unetDtype: info.unetDtype,
            defaults: synthesizer.GenerationParams.fromPartial({
              guidanceScale: info.defaults.guidanceScale,
              numInferenceSteps: info.defaults.numInferenceSteps,
              height: info.defaults.height,
              width: info.defaults.width,
              scheduler: SCHEDULER_ENUM[info.defaults.scheduler],
              maxAttempts: 3,
            }),
            maxPromptTokens: info.maxPromptTokens,
            executionProvider: info.executionProvider,
          });
        },

        synthesize: (call) => {
          if (!loadedModel) {
            call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: NO_MODEL().message });
            return;
          }
          let open = 0;
          let ended = false;
          const finish = () => ended && open === 0 && call.end();
          const respond = (response: Partial<synthesizer.SynthesizeResponse>) => {
            if (!call.cancelled) call.write(synthesizer.SynthesizeResponse.fromPartial(response));
          };
          call.on('data', (request: synthesizer.SynthesizeRequest) => {
            const id = request.id;
            let item: SynthesisItem;
            try {
              const { seed, ...params } = toParams(request.params, 'params');
              item = {
                ...params,
                prompt: request.prompt,
                labels: request.labels,
                seed: seed !== undefined ? BigInt(seed) : randomSeed(),
              };
              loadedModel!.resolve(item);
            } catch (error) {
              const e = toRpcError(error, 'params');
              const field = e instanceof RpcError ? (e.field ?? '') : '';
              respond({
                id,
                error: {
                  code: 'INVALID_ARGUMENT',
                  message: e instanceof RpcError ? e.message : 'invalid request',
                  field,
                  recordId: id,
                },
              });
              return;
            }
            if (queue.length >= config.MAX_QUEUE_DEPTH) {
              respond({
                id,
                error: {
                  code: 'RESOURCE_EXHAUSTED',
                  message: `the queue holds ${queue.length} requests (MAX_QUEUE_DEPTH); send fewer at once or retry later`,
                  field: '',
                  recordId: id,
                },
              });
              return;
            }
            open++;
            queue.push({
              call,
              item,
              done: (result) => {
                open--;
                if (result instanceof Error) {
                  const e = toRpcError(result, 'params');
                  respond({
                    id,
                    error: {
                      code: e instanceof RpcError ? grpc.status[e.code] : 'INTERNAL',
                      message: e instanceof RpcError ? e.message : 'generation failed',
                      field: e instanceof RpcError ? (e.field ?? '') : '',
                      recordId: id,
                    },
                  });
                  if (!(e instanceof RpcError))
                    ctx.logger.error({ recordId: id, err: { name: result.name } }, 'generation failed');
                } else {
                  countImage(result.accepted, result.rejections);
                  respond({
                    id,
                    image: Buffer.from(result.png.buffer, result.png.byteOffset, result.png.byteLength),
                    seed: Number(result.seed),
                    quality: { accepted: result.accepted, attempts: result.attempts, rejections: result.rejections },
                    promptTruncated: result.generated.promptTruncated,
                  });
                }
                finish();
              },
            });
            metrics?.queueDepth.set(queue.length);
            void drain();
          });
          call.on('end', () => {
            ended = true;
            finish();
          });
          call.on('error', () => undefined);
          // A cancelled stream's waiting requests are dropped: nobody would read their images.
          call.on('cancelled', () => {
            for (let i = queue.length - 1; i >= 0; i--) if (queue[i]!.call === call) queue.splice(i, 1);
            metrics?.queueDepth.set(queue.length);
          });
        },

        startSynthesizeDataset: async (call, callback) => {
          const request = call.request;
          if (!request.prompts?.uri)
            throw invalidArgument('prompts.uri', "is required (the anonymizer's prompt manifest)");
          let promptsKey: string;
          try {
            promptsKey = ctx.store.keyOf(request.prompts.uri);
          } catch {
            throw invalidArgument('prompts.uri', "is not in this service's artifact store");
          }
          if (!(await ctx.store.stat(promptsKey)))
            throw new RpcError(
              grpc.status.NOT_FOUND,
              'prompts.uri: no such object in the artifact store',
              'prompts.uri',
            );
          const { seed, ...params } = toParams(request.params, 'params');
          const count = Math.max(1, request.shard?.count ?? 1);
          const index = request.shard?.index ?? 0;
          if (index >= count)
            throw invalidArgument('shard.index', `must be below shard.count (${count}), got ${index}`);
          const imagesPerPrompt = request.imagesPerPrompt || 1;
          if (imagesPerPrompt > 100)
            throw invalidArgument('images_per_prompt', `must be at most 100, got ${imagesPerPrompt}`);
          if (request.outputPrefix && !/^[A-Za-z0-9._\-/]+\/$/.test(request.outputPrefix))
            throw invalidArgument('output_prefix', 'must be a store key prefix ending in "/"');
          if (!request.requestId)
            throw invalidArgument('request_id', 'is required (an idempotency key of your choice)');
          await verifyArtifactRef(ctx.store, request.prompts, 'prompts', promptsKey);
          const { model, release } = await verifiedModelFor(request.model, 'model').catch((error: unknown) => {
            throw toRpcError(error, 'params');
          });
          try {
            model.resolve({ ...params, prompt: 'validation', seed: 0n });
          } catch (error) {
            throw toRpcError(error, 'params');
          } finally {
            release();
          }
          const spec: SynthesizeDatasetSpec & { model?: ModelRef } = {
            promptsKey,
            outputPrefix: request.outputPrefix || `synthesizer/${request.requestId.replace(/[^A-Za-z0-9._-]/g, '_')}/`,
            shard: { index, count },
            imagesPerPrompt,
            params: { ...params, ...(seed !== undefined ? { seed: String(seed) } : {}) },
            ...(request.model?.uri
              ? { model: { uri: request.model.uri, ...(request.model.sha256 && { sha256: request.model.sha256 }) } }
              : {}),
          };
          // JSON round trip: the spec is persisted and compared as plain JSON.
          const job = await ctx.jobs.start({
            requestId: request.requestId,
            kind: DATASET_JOB,
            spec: JSON.parse(JSON.stringify(spec)),
            outputPrefix: spec.outputPrefix,
          });
          callback(null, { job: toProtoJob(job) });
        },
      };
      ctx.addService(synthesizer.SynthesizerServiceService, implementation);
    },
  };
}

async function loadModel(dir: string, config: Config): Promise<TextToImageModel> {
  return TextToImageModel.load(dir, {
    executionProvider: config.EXECUTION_PROVIDER,
    intraOpThreads: config.INTRA_OP_THREADS || undefined,
    memoryArena: config.CPU_MEMORY_ARENA === 'true',
    defaults: {
      ...(config.GUIDANCE_SCALE !== undefined ? { guidanceScale: config.GUIDANCE_SCALE } : {}),
      ...(config.NUM_INFERENCE_STEPS !== undefined ? { numInferenceSteps: config.NUM_INFERENCE_STEPS } : {}),
    },
  });
}
