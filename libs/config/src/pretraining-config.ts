import { createHash } from 'node:crypto';
import { EXECUTION_PROVIDERS, type ExecutionProvider } from './execution-provider';

/**
 * A pre-training job's configuration. Field names are the camelCase of
 * proto/medsyn/pretrainer/v1 PretrainingConfig (ts-proto's names); YAML configs use the proto's
 * snake_case names (parsePretrainingConfig converts).
 */
export interface PretrainingConfig {
  method: Method;
  imageEncoder: {
    /** resnet18 / resnet34 / resnet50 / resnet101 / vit_tiny / vit_small / vit_base_16. */
    architecture: string;
    imageSize: number;
    /** ResNet stem width (torchvision 64) or ViT hidden width; 0 for the architecture's own. */
    width: number;
    /** Initial weights (ONNX or safetensors) by parameter name: a store URI or key. */
    init?: string;
  };
  textEncoder: {
    layers: number;
    hiddenSize: number;
    heads: number;
    maxLength: number;
    /** A BERT vocab.txt (store URI or key); absent: train a WordPiece vocabulary on the training reports. */
    vocab?: string;
    vocabSize: number;
    init?: string;
  };
  data: {
    realPairs: string[];
    syntheticPairs: string[];
    /** Share of synthetic pairs per epoch when both kinds are given. */
    syntheticRatio: number;
    /** Share of pairs held out for retrieval validation (unused when retrievalPairs is given). */
    validationFraction: number;
    /**
     * A pair manifest (store URI or key) scored for held-out retrieval instead; training leaves out
     * the pairs sharing a record id or an image with it, so arms trained on different pairs are
     * scored on the same held-out images.
     */
    retrievalPairs?: string;
    /** Random resized crop, small affine and brightness/contrast jitter on training images (config: disable_augmentation turns them off). */
    augment: boolean;
  };
  batchSize: number;
  epochs: number;
  optimizer: {
    name: 'adamw' | 'sgd';
    learningRate: number;
    weightDecay: number;
    beta1: number;
    beta2: number;
    momentum: number;
    maxGradNorm: number;
  };
  schedule: { warmupSteps: number; decay: 'cosine' | 'constant'; minLrRatio: number };
  seed: number;
  /** 0: once per epoch. */
  checkpointEverySteps: number;
  embeddingSize: number;
  /** The method's main temperature; 0 for the paper's. */
  temperature: number;
  methodOptions: Record<string, number>;
  gradientAccumulation: number;
  executionProvider: ExecutionProvider;
}

export const METHODS = ['convirt', 'gloria', 'mgca'] as const;
export type Method = (typeof METHODS)[number];

/** A configuration that cannot run; `field` is its snake_case path (`data.real_pairs[0]`, `batch_size`). */
export class PretrainingConfigError extends Error {
  override readonly name = 'PretrainingConfigError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Known keys per section (camelCase), to refuse typos instead of silently ignoring them. */
const SECTIONS: Record<string, string[]> = {
  '': [
    'method',
    'imageEncoder',
    'textEncoder',
    'data',
    'batchSize',
    'epochs',
    'optimizer',
    'schedule',
    'seed',
    'checkpointEverySteps',
    'embeddingSize',
    'temperature',
    'methodOptions',
    'gradientAccumulation',
    'executionProvider',
  ],
  imageEncoder: ['architecture', 'imageSize', 'width', 'init'],
  textEncoder: ['layers', 'hiddenSize', 'heads', 'maxLength', 'vocab', 'vocabSize', 'init'],
  data: [
    'realPairs',
    'syntheticPairs',
    'syntheticRatio',
    'validationFraction',
    'disableAugmentation',
    'retrievalPairs',
  ],
  optimizer: ['name', 'learningRate', 'weightDecay', 'beta1', 'beta2', 'momentum', 'maxGradNorm'],
  schedule: ['warmupSteps', 'decay', 'minLrRatio'],
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function section(value: unknown, path: string): Json {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw new PretrainingConfigError(path || 'config', 'must be a mapping');
  const known = SECTIONS[camel(path)] ?? [];
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    const name = camel(key);
    if (!known.includes(name))
      throw new PretrainingConfigError(path ? `${path}.${snake(key)}` : snake(key), 'unknown setting');
    out[name] = v;
  }
  return out;
}

function number(
  v: unknown,
  field: string,
  fallback: number,
  check: { integer?: boolean; min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean } = {},
): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new PretrainingConfigError(field, `must be a number, got ${JSON.stringify(v)}`);
  if (check.integer && !Number.isInteger(v)) throw new PretrainingConfigError(field, `must be an integer, got ${v}`);
  if (check.min !== undefined && (check.minExclusive ? v <= check.min : v < check.min))
    throw new PretrainingConfigError(field, `must be ${check.minExclusive ? '>' : '>='} ${check.min}, got ${v}`);
  if (check.max !== undefined && (check.maxExclusive ? v >= check.max : v > check.max))
    throw new PretrainingConfigError(field, `must be ${check.maxExclusive ? '<' : '<='} ${check.max}, got ${v}`);
  return v;
}

function text(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw new PretrainingConfigError(field, `must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function oneOf<T extends string>(v: unknown, field: string, allowed: readonly T[], fallback: T): T {
  if (v === undefined || v === null || v === '') return fallback;
  const s = String(v)
    .toLowerCase()
    .replace(/^method_/, '');
  if (!(allowed as readonly string[]).includes(s))
    throw new PretrainingConfigError(field, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return s as T;
}

function uris(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((item, i) => {
    // An ArtifactRef ({ uri, sha256, ... }) or a plain URI / key.
    const uri = isObject(item) ? item.uri : item;
    if (typeof uri !== 'string' || uri === '')
      throw new PretrainingConfigError(`${field}[${i}]`, 'must be a store URI or key');
    return uri;
  });
}

const ref = (v: unknown, field: string) => (isObject(v) ? text(v.uri, `${field}.uri`) : text(v, field));

/**
 * Upper bounds no real run reaches on one GPU (docs/pretrainer.md): they turn a typo or a hostile
 * request (batch 1e9, image size 1,048,576) into INVALID_ARGUMENT naming the field, not an
 * allocation that takes the process down.
 */
export const PRETRAINING_LIMITS = {
  image_size: 1024,
  width: 4096,
  layers: 48,
  hidden_size: 8192,
  heads: 128,
  vocab_size: 1_000_000,
  batch_size: 4096,
  epochs: 10_000,
  steps: 10_000_000,
  embedding_size: 8192,
} as const;

/**
 * Reads a configuration (parsed YAML or JSON in the proto's snake_case, or ts-proto's camelCase
 * objects), fills defaults and checks every field; throws PretrainingConfigError naming the field.
 */
export function parsePretrainingConfig(value: unknown): PretrainingConfig {
  const config = readFields(value);
  if (config.data.realPairs.length + config.data.syntheticPairs.length === 0)
    throw new PretrainingConfigError(
      'data.real_pairs',
      'no pair manifest given (data.real_pairs or data.synthetic_pairs)',
    );
  return checkCombinations(config);
}

/**
 * Every check of parsePretrainingConfig but that pair manifests are given: for a config whose
 * pairs do not exist yet (a pipeline's `pretrain.config`, before its pairs are made).
 */
export function parsePretrainingConfigWithoutPairs(value: unknown): PretrainingConfig {
  return checkCombinations(readFields(value));
}

/** Each field read, defaulted and checked on its own. */
function readFields(value: unknown): PretrainingConfig {
  const top = section(value, '');
  const image = section(top.imageEncoder, 'image_encoder');
  const textEnc = section(top.textEncoder, 'text_encoder');
  const data = section(top.data, 'data');
  const optimizer = section(top.optimizer, 'optimizer');
  const schedule = section(top.schedule, 'schedule');
  if (top.method === undefined || top.method === 'METHOD_UNSPECIFIED' || top.method === 0)
    throw new PretrainingConfigError('method', `is required (${METHODS.join(', ')})`);
  const method =
    typeof top.method === 'number'
      ? (METHODS[top.method - 1] ?? oneOf(top.method, 'method', METHODS, 'convirt'))
      : oneOf(top.method, 'method', METHODS, 'convirt');

  const methodOptions: Record<string, number> = {};
  if (top.methodOptions !== undefined) {
    if (!isObject(top.methodOptions))
      throw new PretrainingConfigError('method_options', 'must be a mapping of names to numbers');
    for (const [k, v] of Object.entries(top.methodOptions)) methodOptions[k] = number(v, `method_options.${k}`, 0);
  }
  const config: PretrainingConfig = {
    method,
    imageEncoder: {
      architecture: oneOf(
        image.architecture,
        'image_encoder.architecture',
        ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'vit_tiny', 'vit_small', 'vit_base_16'],
        'resnet50',
      ),
      imageSize:
        number(image.imageSize, 'image_encoder.image_size', 224, {
          integer: true,
          min: 16,
          max: PRETRAINING_LIMITS.image_size,
        }) || 224,
      width: number(image.width, 'image_encoder.width', 0, { integer: true, min: 0, max: PRETRAINING_LIMITS.width }),
      init: ref(image.init, 'image_encoder.init'),
    },
    textEncoder: {
      layers: number(textEnc.layers, 'text_encoder.layers', 4, {
        integer: true,
        min: 1,
        max: PRETRAINING_LIMITS.layers,
      }),
      hiddenSize: number(textEnc.hiddenSize, 'text_encoder.hidden_size', 256, {
        integer: true,
        min: 1,
        max: PRETRAINING_LIMITS.hidden_size,
      }),
      heads: number(textEnc.heads, 'text_encoder.heads', 4, { integer: true, min: 1, max: PRETRAINING_LIMITS.heads }),
      maxLength: number(textEnc.maxLength, 'text_encoder.max_length', 128, { integer: true, min: 4, max: 512 }) || 128,
      vocab: ref(textEnc.vocab, 'text_encoder.vocab'),
      vocabSize:
        number(textEnc.vocabSize, 'text_encoder.vocab_size', 8000, {
          integer: true,
          min: 16,
          max: PRETRAINING_LIMITS.vocab_size,
        }) || 8000,
      init: ref(textEnc.init, 'text_encoder.init'),
    },
    data: {
      realPairs: uris(data.realPairs, 'data.real_pairs'),
      syntheticPairs: uris(data.syntheticPairs, 'data.synthetic_pairs'),
      syntheticRatio: number(data.syntheticRatio, 'data.synthetic_ratio', 0.5, { min: 0, max: 1 }),
      validationFraction: number(data.validationFraction, 'data.validation_fraction', 0.1, {
        min: 0,
        max: 0.5,
        maxExclusive: true,
      }),
      retrievalPairs: ref(data.retrievalPairs, 'data.retrieval_pairs'),
      augment: !data.disableAugmentation,
    },
    // At least 2: contrastive losses need in-batch negatives.
    batchSize: number(top.batchSize, 'batch_size', 32, { integer: true, min: 2, max: PRETRAINING_LIMITS.batch_size }),
    epochs: number(top.epochs, 'epochs', 1, { integer: true, min: 1, max: PRETRAINING_LIMITS.epochs }),
    optimizer: {
      name: oneOf(optimizer.name, 'optimizer.name', ['adamw', 'sgd'], 'adamw'),
      learningRate: number(optimizer.learningRate, 'optimizer.learning_rate', 2e-4, { min: 0, minExclusive: true }),
      weightDecay: number(optimizer.weightDecay, 'optimizer.weight_decay', 0.05, { min: 0 }),
      beta1: number(optimizer.beta1, 'optimizer.beta1', 0.9, { min: 0, max: 1, maxExclusive: true }) || 0.9,
      beta2: number(optimizer.beta2, 'optimizer.beta2', 0.999, { min: 0, max: 1, maxExclusive: true }) || 0.999,
      momentum: number(optimizer.momentum, 'optimizer.momentum', 0.9, { min: 0, max: 1, maxExclusive: true }),
      maxGradNorm: number(optimizer.maxGradNorm, 'optimizer.max_grad_norm', 0, { min: 0 }),
    },
    schedule: {
      warmupSteps: number(schedule.warmupSteps, 'schedule.warmup_steps', 0, {
        integer: true,
        min: 0,
        max: PRETRAINING_LIMITS.steps,
      }),
      decay: oneOf(schedule.decay, 'schedule.decay', ['cosine', 'constant'], 'cosine'),
      minLrRatio: number(schedule.minLrRatio, 'schedule.min_lr_ratio', 0, { min: 0, max: 1 }),
    },
    seed: number(top.seed, 'seed', 0, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER }),
    checkpointEverySteps: number(top.checkpointEverySteps, 'checkpoint_every_steps', 0, {
      integer: true,
      min: 0,
      max: PRETRAINING_LIMITS.steps,
    }),
    embeddingSize:
      number(top.embeddingSize, 'embedding_size', 128, {
        integer: true,
        min: 1,
        max: PRETRAINING_LIMITS.embedding_size,
      }) || 128,
    temperature: number(top.temperature, 'temperature', 0, { min: 0 }),
    methodOptions,
    gradientAccumulation:
      number(top.gradientAccumulation, 'gradient_accumulation', 1, {
        integer: true,
        min: 0,
        max: PRETRAINING_LIMITS.batch_size,
      }) || 1,
    executionProvider: oneOf(top.executionProvider, 'execution_provider', EXECUTION_PROVIDERS, 'cpu'),
  };
  return config;
}

/** The checks that involve several fields. */
function checkCombinations(config: PretrainingConfig): PretrainingConfig {
  if (config.textEncoder.hiddenSize % config.textEncoder.heads !== 0)
    throw new PretrainingConfigError(
      'text_encoder.hidden_size',
      `must be divisible by text_encoder.heads (${config.textEncoder.heads})`,
    );
  if (config.batchSize % config.gradientAccumulation !== 0)
    throw new PretrainingConfigError('gradient_accumulation', `must divide batch_size (${config.batchSize})`);
  if (config.gradientAccumulation > 1)
    throw new PretrainingConfigError(
      'gradient_accumulation',
      'contrastive losses need the whole batch in one graph (in-batch negatives); only 1 is supported',
    );
  return config;
}

/**
 * The canonical JSON of a configuration and its sha256 (the lineage's config digest). node:crypto directly, not
 * artifact-store's sha256Hex: this library imports nothing, so that every tool can check a config cheaply.
 */
export function configDigest(config: PretrainingConfig): { json: string; sha256: string } {
  const json = JSON.stringify(config, null, 2);
  return { json, sha256: createHash('sha256').update(json, 'utf8').digest('hex') };
}
