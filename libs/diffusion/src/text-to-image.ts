import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { localTreeDigest } from '@medsyn/artifact-store';
import { ClipTokenizer, ClipTokenizerError } from '@medsyn/clip-tokenizer';
import { grayImage, type GrayImage } from '@medsyn/imaging';
import { fromFloat16Bits, toFloat16Bits } from './float16';
import { SeededNoise } from './noise';
import {
  SchedulerConfigError,
  createScheduler,
  schedulerKindOf,
  type SchedulerConfig,
  type SchedulerKind,
} from './schedulers';
import type { ExecutionProvider } from '@medsyn/config';
import { cpuQuotaLimit } from '@medsyn/training';

export type { ExecutionProvider };

/** A problem with the model directory: a missing or corrupt file, an unexpected model signature. */
export class ModelLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelLoadError';
  }
}

/** Runs a scheduler check at load: an unusable scheduler_config.json is a model load error. */
function asModelLoadError<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof SchedulerConfigError) throw new ModelLoadError(error.message);
    throw error;
  }
}

/** The requested execution provider is not in this onnxruntime build or cannot start here. */
export class ExecutionProviderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExecutionProviderError';
  }
}

/** A bad request parameter; `field` names it (as in the proto). Messages never quote prompts. */
export class GenerationInputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'GenerationInputError';
  }
}

/** Longest prompt accepted, in characters; CLIP reads 75 tokens, so this is a guard, not a feature. */
export const MAX_PROMPT_CHARACTERS = 4096;

export interface GenerationDefaults {
  guidanceScale: number;
  numInferenceSteps: number;
  height: number;
  width: number;
  scheduler: SchedulerKind;
}

export interface ModelInfo {
  dir: string;
  /** e.g. "stable-diffusion-2.x" (from the text encoder width), or model_index.json's medsyn.architecture */
  architecture: string;
  /** onnxruntime element type of the UNet's sample input: "float32" or "float16" */
  unetDtype: string;
  /** treeDigest of the model directory (@medsyn/artifact-store): what a request's model ref must carry */
  digest: string;
  defaults: GenerationDefaults;
  maxPromptTokens: number;
  executionProvider: ExecutionProvider;
  /** Latent channels and the VAE's downsampling factor */
  latentChannels: number;
  vaeScaleFactor: number;
  scalingFactor: number;
}

export interface GenerationRequest {
  prompt: string;
  negativePrompt?: string;
  guidanceScale?: number;
  numInferenceSteps?: number;
  height?: number;
  width?: number;
  scheduler?: SchedulerKind;
  /** Unsigned 64-bit seed of the initial noise (and of Euler ancestral's fresh noise). */
  seed: bigint;
}

export interface GeneratedImage {
  image: GrayImage;
  seed: bigint;
  promptTruncated: boolean;
  promptTokens: number;
  /** The parameters actually used (defaults filled in). */
  params: Required<Omit<GenerationRequest, 'prompt' | 'negativePrompt' | 'seed'>>;
}

export interface ModelLoadOptions {
  executionProvider?: ExecutionProvider;
  /** Threads per operator (default: onnxruntime's, the machine's cores, or the container's CPU limit where lower). */
  intraOpThreads?: number;
  /**
   * onnxruntime's CPU memory arena (default on). Off, each run's activations go back to the
   * system when it ends: at 512 px they reach gigabytes per model (the VAE decoder's 512x512x128
   * feature maps, the UNet's 4096-token attention), and an arena keeps every session's peak for
   * the life of the process.
   */
  memoryArena?: boolean;
  /** Overrides of the model's generation defaults (e.g. from the service's config). */
  defaults?: Partial<GenerationDefaults>;
}

/** RoentGen-v2's sampling settings (guidance 3, 75 PNDM steps): the defaults a model can override. */
export const ROENTGEN_V2_DEFAULTS = { guidanceScale: 3, numInferenceSteps: 75 };

interface InputSpec {
  name: string;
  type: string;
  shape: readonly (number | string)[];
}

function readJsonFile<T>(file: string, required: boolean): T | undefined {
  if (!fs.existsSync(file)) {
    if (required)
      throw new ModelLoadError(
        `${path.basename(path.dirname(file))}/${path.basename(file)} not found in the model directory`,
      );
    return undefined;
  }
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (error) {
    throw new ModelLoadError(`${path.basename(file)} is not valid JSON: ${(error as Error).message}`);
  }
}

async function createSession(
  file: string,
  component: string,
  options: ModelLoadOptions,
): Promise<ort.InferenceSession> {
  const provider = options.executionProvider ?? 'cpu';
  const supported = ort.listSupportedBackends().map((b) => b.name);
  if (!supported.includes(provider)) {
    throw new ExecutionProviderError(
      `execution provider "${provider}" is not in this onnxruntime-node build (it has: ${supported.join(', ')}); GPU machines install it with ONNXRUNTIME_NODE_INSTALL=cuda12`,
    );
  }
  if (!fs.existsSync(file)) throw new ModelLoadError(`${component}/model.onnx not found in the model directory`);
  // onnxruntime sizes its pool by the machine's cores, blind to a container's CPU limit.
  const threads = options.intraOpThreads ?? cpuQuotaLimit();
  try {
    // A path (not bytes) so that exports over 2 GB with external weight files load too.
    return await ort.InferenceSession.create(file, {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
      enableCpuMemArena: options.memoryArena ?? true,
      ...(threads ? { intraOpNumThreads: threads } : {}),
    });
  } catch (error) {
    const message = (error as Error).message;
    if (provider !== 'cpu') {
      // Tell a provider failure from a bad file: the CPU provider always exists.
      const onCpu = await ort.InferenceSession.create(file, { executionProviders: ['cpu'] }).catch(() => undefined);
      if (onCpu) {
        await onCpu.release();
        throw new ExecutionProviderError(
          `execution provider "${provider}" could not run ${component}/model.onnx: ${message}`,
        );
      }
    }
    throw new ModelLoadError(`${component}/model.onnx could not be loaded (corrupt or not an ONNX model?): ${message}`);
  }
}

function tensorInputs(session: ort.InferenceSession): InputSpec[] {
  return session.inputMetadata.map((m) => ({
    name: m.name,
    type: m.isTensor ? m.type : 'non-tensor',
    shape: m.isTensor ? m.shape : [],
  }));
}

function requireInput(inputs: InputSpec[], name: string, component: string): InputSpec {
  const spec = inputs.find((i) => i.name === name);
  if (!spec)
    throw new ModelLoadError(
      `${component}/model.onnx has no input "${name}" (it has: ${inputs.map((i) => i.name).join(', ')})`,
    );
  return spec;
}

const FLOAT_TYPES = new Set(['float32', 'float16']);

/** A float tensor in the element type the model declares (fp16 models take IEEE half bits). */
function floatTensor(type: string, data: Float32Array, dims: readonly number[]): ort.Tensor {
  return type === 'float16'
    ? new ort.Tensor('float16', toFloat16Bits(data), dims)
    : new ort.Tensor('float32', data, dims);
}

function readFloats(t: ort.Tensor): Float32Array {
  if (t.type === 'float16') return fromFloat16Bits(t.data as Uint16Array);
  if (t.type === 'float32') return t.data as Float32Array;
  throw new ModelLoadError(`model output is ${t.type}, expected float32 or float16`);
}

function intTensor(type: string, values: number[], dims: readonly number[]): ort.Tensor {
  if (type === 'int64') return new ort.Tensor('int64', BigInt64Array.from(values.map((v) => BigInt(v))), dims);
  if (type === 'int32') return new ort.Tensor('int32', Int32Array.from(values), dims);
  throw new ModelLoadError(`integer input of type ${type} is not supported (int32, int64)`);
}

/**
 * A loaded text-to-image latent diffusion model: CLIP text encoder, UNet, VAE decoder and
 * scheduler of a Stable Diffusion 1.x / 2.x ONNX export (diffusers / optimum layout):
 * model_index.json, text_encoder/, unet/, vae_decoder/, tokenizer/, scheduler/. It is what
 * diffusers calls a pipeline (OnnxStableDiffusionPipeline); medsyn keeps that word for the
 * end-to-end run of the four services (@medsyn/pipeline). Input names, element types and shapes
 * are read from each model, so fp32 and fp16 exports, int32 or int64 token ids and any timestep
 * dtype and shape work unchanged.
 */
export class TextToImageModel {
  private constructor(
    readonly info: ModelInfo,
    readonly tokenizer: ClipTokenizer,
    private readonly schedulerConfig: SchedulerConfig,
    private readonly textEncoder: ort.InferenceSession,
    private readonly unet: ort.InferenceSession,
    private readonly vaeDecoder: ort.InferenceSession,
  ) {}

  static async load(dir: string, options: ModelLoadOptions = {}): Promise<TextToImageModel> {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
      throw new ModelLoadError(`model directory ${dir} does not exist`);
    const modelIndex = readJsonFile<Record<string, unknown>>(path.join(dir, 'model_index.json'), true)!;
    const schedulerConfig = readJsonFile<SchedulerConfig>(path.join(dir, 'scheduler', 'scheduler_config.json'), true)!;
    const unetConfig =
      readJsonFile<{ sample_size?: number; in_channels?: number }>(path.join(dir, 'unet', 'config.json'), false) ?? {};
    const vaeConfig =
      readJsonFile<{ scaling_factor?: number; block_out_channels?: number[]; latent_channels?: number }>(
        path.join(dir, 'vae_decoder', 'config.json'),
        false,
      ) ?? {};
    const textConfig =
      readJsonFile<{ hidden_size?: number }>(path.join(dir, 'text_encoder', 'config.json'), false) ?? {};
    let tokenizer: ClipTokenizer;
    try {
      tokenizer = ClipTokenizer.fromDirectory(path.join(dir, 'tokenizer'));
    } catch (error) {
      if (error instanceof ClipTokenizerError) throw new ModelLoadError(error.message);
      throw error;
    }
    const textEncoder = await createSession(path.join(dir, 'text_encoder', 'model.onnx'), 'text_encoder', options);
    const unet = await createSession(path.join(dir, 'unet', 'model.onnx'), 'unet', options);
    const vaeDecoder = await createSession(path.join(dir, 'vae_decoder', 'model.onnx'), 'vae_decoder', options);

    const unetInputs = tensorInputs(unet);
    const sample = requireInput(unetInputs, 'sample', 'unet');
    requireInput(unetInputs, 'timestep', 'unet');
    requireInput(unetInputs, 'encoder_hidden_states', 'unet');
    requireInput(tensorInputs(vaeDecoder), 'latent_sample', 'vae_decoder');
    if (!FLOAT_TYPES.has(sample.type))
      throw new ModelLoadError(`unet/model.onnx input "sample" is ${sample.type}, expected float32 or float16`);

    const latentChannels =
      typeof sample.shape[1] === 'number'
        ? sample.shape[1]
        : (unetConfig.in_channels ?? vaeConfig.latent_channels ?? 4);
    const vaeScaleFactor = 2 ** ((vaeConfig.block_out_channels?.length ?? 4) - 1);
    const staticLatent = typeof sample.shape[2] === 'number' ? sample.shape[2] : undefined;
    const latentSize = staticLatent ?? unetConfig.sample_size ?? 64;
    const medsyn = (modelIndex.medsyn ?? {}) as {
      architecture?: string;
      guidance_scale?: number;
      num_inference_steps?: number;
    };
    const hidden = textConfig.hidden_size;
    const architecture =
      medsyn.architecture ??
      (hidden === 1024 ? 'stable-diffusion-2.x' : hidden === 768 ? 'stable-diffusion-1.x' : 'stable-diffusion-like');
    const defaults: GenerationDefaults = {
      guidanceScale: medsyn.guidance_scale ?? ROENTGEN_V2_DEFAULTS.guidanceScale,
      numInferenceSteps: medsyn.num_inference_steps ?? ROENTGEN_V2_DEFAULTS.numInferenceSteps,
      height: latentSize * vaeScaleFactor,
      width: latentSize * vaeScaleFactor,
      scheduler: asModelLoadError(() => schedulerKindOf(schedulerConfig)),
      ...options.defaults,
    };
    const info: ModelInfo = {
      dir,
      architecture,
      unetDtype: sample.type,
      digest: await localTreeDigest(dir),
      defaults,
      maxPromptTokens: tokenizer.maxLength,
      executionProvider: options.executionProvider ?? 'cpu',
      latentChannels,
      vaeScaleFactor,
      scalingFactor: vaeConfig.scaling_factor ?? 0.18215,
    };
    // Fail at load, not at the first request, when the scheduler config is unusable.
    asModelLoadError(() => createScheduler(defaults.scheduler, schedulerConfig, defaults.numInferenceSteps));
    return new TextToImageModel(info, tokenizer, schedulerConfig, textEncoder, unet, vaeDecoder);
  }

  /** Fills defaults and validates one request; throws GenerationInputError naming the field. */
  resolve(request: GenerationRequest): GeneratedImage['params'] {
    const d = this.info.defaults;
    if (typeof request.prompt !== 'string' || request.prompt.trim() === '')
      throw new GenerationInputError('prompt', 'must not be empty');
    if (request.prompt.length > MAX_PROMPT_CHARACTERS)
      throw new GenerationInputError(
        'prompt',
        `is ${request.prompt.length} characters, the limit is ${MAX_PROMPT_CHARACTERS} (the model reads ${this.info.maxPromptTokens} tokens)`,
      );
    if ((request.negativePrompt ?? '').length > MAX_PROMPT_CHARACTERS)
      throw new GenerationInputError('negative_prompt', `is longer than ${MAX_PROMPT_CHARACTERS} characters`);
    const params = {
      guidanceScale: request.guidanceScale ?? d.guidanceScale,
      numInferenceSteps: request.numInferenceSteps ?? d.numInferenceSteps,
      height: request.height ?? d.height,
      width: request.width ?? d.width,
      scheduler: request.scheduler ?? d.scheduler,
    };
    if (!Number.isFinite(params.guidanceScale) || params.guidanceScale < 0)
      throw new GenerationInputError('guidance_scale', `must be a number >= 0, got ${params.guidanceScale}`);
    if (
      !Number.isInteger(params.numInferenceSteps) ||
      params.numInferenceSteps < 1 ||
      params.numInferenceSteps > 1000
    ) {
      throw new GenerationInputError(
        'num_inference_steps',
        `must be an integer from 1 to 1000, got ${params.numInferenceSteps}`,
      );
    }
    try {
      // The model's scheduler config may allow fewer (Runge-Kutta warm-up, steps_offset): say so now, not mid-batch.
      createScheduler(params.scheduler, this.schedulerConfig, params.numInferenceSteps);
    } catch (error) {
      if (error instanceof SchedulerConfigError) throw new GenerationInputError('num_inference_steps', error.message);
      throw error;
    }
    const sampleShape = requireInput(tensorInputs(this.unet), 'sample', 'unet').shape;
    for (const [field, value, axis] of [
      ['height', params.height, 2],
      ['width', params.width, 3],
    ] as const) {
      const factor = this.info.vaeScaleFactor;
      if (!Number.isInteger(value) || value < factor || value > 4096 || value % factor !== 0)
        throw new GenerationInputError(field, `must be a multiple of ${factor} from ${factor} to 4096, got ${value}`);
      const fixed = sampleShape[axis];
      if (typeof fixed === 'number' && fixed * factor !== value)
        throw new GenerationInputError(field, `this model only generates ${fixed * factor} pixels, got ${value}`);
    }
    if (request.seed < 0n || request.seed >= 1n << 64n)
      throw new GenerationInputError('seed', 'must be an unsigned 64-bit integer');
    return params;
  }

  /**
   * Generates one image per request. Requests of one call must share steps, size and scheduler
   * (they are denoised as one batch); prompt, negative prompt, guidance and seed are per request.
   * `onStep` is told after each UNet evaluation.
   */
  async generate(
    requests: GenerationRequest[],
    onStep?: (done: number, total: number) => void,
  ): Promise<GeneratedImage[]> {
    if (requests.length === 0) return [];
    const params = requests.map((r) => this.resolve(r));
    const first = params[0]!;
    for (const p of params) {
      if (
        p.numInferenceSteps !== first.numInferenceSteps ||
        p.height !== first.height ||
        p.width !== first.width ||
        p.scheduler !== first.scheduler
      ) {
        throw new GenerationInputError(
          'params',
          'requests batched together must share num_inference_steps, height, width and scheduler',
        );
      }
    }
    const n = requests.length;
    // Classifier-free guidance (Ho & Salimans 2022) only where guidance > 1, as diffusers does.
    const guided = params.map((p) => p.guidanceScale > 1);
    const anyGuided = guided.some((g) => g);
    const encodings = requests.map((r) => this.tokenizer.encode(r.prompt));
    const negatives = requests.map((r) => this.tokenizer.encode(r.negativePrompt ?? ''));
    // Unconditional rows first, then conditional ones (diffusers' order), in one text-encoder run.
    const textBatch = anyGuided ? [...negatives, ...encodings] : encodings;
    const context = await this.encodeText(textBatch.map((e) => e.ids));

    const channels = this.info.latentChannels;
    const latentH = first.height / this.info.vaeScaleFactor;
    const latentW = first.width / this.info.vaeScaleFactor;
    const size = channels * latentH * latentW;
    const noises = requests.map((r) => new SeededNoise(r.seed));
    const schedulers = requests.map(() =>
      createScheduler(first.scheduler, this.schedulerConfig, first.numInferenceSteps),
    );
    let latents = noises.map((noise, i) => {
      const x = noise.normal(size);
      const sigma = schedulers[i]!.initNoiseSigma;
      if (sigma !== 1) for (let j = 0; j < size; j++) x[j]! *= sigma;
      return x;
    });

    const timesteps = schedulers[0]!.timesteps;
    const rows = anyGuided ? 2 * n : n;
    for (let step = 0; step < timesteps.length; step++) {
      const scale = schedulers[0]!.inputScale(step);
      const input = new Float32Array(rows * size);
      latents.forEach((x, i) => {
        for (let j = 0; j < size; j++) {
          const v = x[j]! * scale;
          input[i * size + j] = v;
          if (anyGuided) input[(n + i) * size + j] = v;
        }
      });
      const predicted = await this.predictNoise(input, [rows, channels, latentH, latentW], timesteps[step]!, context);
      latents = latents.map((x, i) => {
        const g = params[i]!.guidanceScale;
        const cond = predicted.subarray((anyGuided ? n + i : i) * size, (anyGuided ? n + i + 1 : i + 1) * size);
        let output: Float32Array = cond;
        if (guided[i]) {
          const uncond = predicted.subarray(i * size, (i + 1) * size);
          output = new Float32Array(size);
          for (let j = 0; j < size; j++) output[j] = uncond[j]! + g * (cond[j]! - uncond[j]!);
        }
        return schedulers[i]!.step(step, output, x, () => noises[i]!.normal(size));
      });
      onStep?.(step + 1, timesteps.length);
    }

    const images = await this.decode(latents, [channels, latentH, latentW]);
    return images.map((image, i) => ({
      image,
      seed: requests[i]!.seed,
      promptTruncated: encodings[i]!.truncated,
      promptTokens: encodings[i]!.tokenCount,
      params: params[i]!,
    }));
  }

  private async encodeText(ids: number[][]): Promise<ort.Tensor> {
    const inputs = tensorInputs(this.textEncoder);
    const spec = inputs.find((i) => i.name === 'input_ids') ?? inputs[0]!;
    const length = this.tokenizer.maxLength;
    const feeds: Record<string, ort.Tensor> = { [spec.name]: intTensor(spec.type, ids.flat(), [ids.length, length]) };
    const outputName = this.textEncoder.outputNames.includes('last_hidden_state')
      ? 'last_hidden_state'
      : this.textEncoder.outputNames[0]!;
    const out = await this.textEncoder.run(feeds, [outputName]);
    return out[outputName]!;
  }

  private async predictNoise(
    sample: Float32Array,
    dims: number[],
    timestep: number,
    context: ort.Tensor,
  ): Promise<Float32Array> {
    const inputs = tensorInputs(this.unet);
    const sampleSpec = requireInput(inputs, 'sample', 'unet');
    const timeSpec = requireInput(inputs, 'timestep', 'unet');
    const contextSpec = requireInput(inputs, 'encoder_hidden_states', 'unet');
    // Exports differ: diffusers' converter takes float [batch], optimum int64 [1]; scalars exist too.
    const timeDims = timeSpec.shape.length === 0 ? [] : timeSpec.shape[0] === 1 ? [1] : [dims[0]!];
    const count = timeDims.length === 0 ? 1 : timeDims[0]!;
    const time = FLOAT_TYPES.has(timeSpec.type)
      ? floatTensor(timeSpec.type, new Float32Array(count).fill(timestep), timeDims)
      : intTensor(timeSpec.type, new Array(count).fill(Math.round(timestep)), timeDims);
    const contextTensor =
      context.type === contextSpec.type ? context : floatTensor(contextSpec.type, readFloats(context), context.dims);
    const outputName = this.unet.outputNames.includes('out_sample') ? 'out_sample' : this.unet.outputNames[0]!;
    const out = await this.unet.run(
      { sample: floatTensor(sampleSpec.type, sample, dims), timestep: time, encoder_hidden_states: contextTensor },
      [outputName],
    );
    return readFloats(out[outputName]!);
  }

  /** VAE decoder on latents / scaling_factor; RGB in [-1, 1] to gray in [0, 1] (channel mean). */
  private async decode(latents: Float32Array[], latentDims: number[]): Promise<GrayImage[]> {
    const spec = requireInput(tensorInputs(this.vaeDecoder), 'latent_sample', 'vae_decoder');
    const size = latents[0]!.length;
    const batch = new Float32Array(latents.length * size);
    const inverse = 1 / this.info.scalingFactor;
    latents.forEach((x, i) => {
      for (let j = 0; j < size; j++) batch[i * size + j] = x[j]! * inverse;
    });
    const outputName = this.vaeDecoder.outputNames.includes('sample') ? 'sample' : this.vaeDecoder.outputNames[0]!;
    const out = (
      await this.vaeDecoder.run({ [spec.name]: floatTensor(spec.type, batch, [latents.length, ...latentDims]) }, [
        outputName,
      ])
    )[outputName]!;
    const pixels = readFloats(out);
    const [, rgb, height, width] = out.dims as [number, number, number, number];
    const plane = height * width;
    return latents.map((_, i) => {
      const data = new Float32Array(plane);
      for (let c = 0; c < rgb; c++) {
        const offset = (i * rgb + c) * plane;
        for (let j = 0; j < plane; j++) data[j]! += pixels[offset + j]!;
      }
      for (let j = 0; j < plane; j++) data[j] = Math.min(1, Math.max(0, data[j]! / rgb / 2 + 0.5));
      return grayImage(width, height, data);
    });
  }

  async close(): Promise<void> {
    await Promise.all([this.textEncoder.release(), this.unet.release(), this.vaeDecoder.release()]);
  }
}
