import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import {
  EvaluationConfigError,
  METHODS,
  PretrainingConfigError,
  parseEvaluationConfigWithoutEncoders,
  parsePretrainingConfigWithoutPairs,
  type Method,
} from '@medsyn/config';

export const SERVICE_NAMES = ['anonymizer', 'synthesizer', 'pretrainer', 'evaluator'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** A config mistake, named by its key path (`pretrain.methods[1]`), before anything starts. */
export class PipelineConfigError extends Error {
  override name = 'PipelineConfigError';
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`${key || 'config'}: ${message}`);
  }
}

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be letters, digits, ".", "_" or "-"');
const address = z.string().regex(/^[^\s/]+:\d+$/, 'must be host:port');
const fraction = z.number().gt(0).lte(1);

/** How the pipeline reaches a remote service: TLS (with a client certificate for mTLS) and a bearer token named by its variable. */
const security = {
  tls: z
    .object({ ca: z.string().min(1), cert: z.string().min(1).optional(), key: z.string().min(1).optional() })
    .strict()
    .optional(),
  /** The name of the environment variable holding the token; the token itself never goes in the config. */
  token_env: z
    .string()
    .regex(
      /^[A-Za-z_][A-Za-z0-9_]*$/,
      'must be the name of an environment variable holding the token (never the token itself)',
    )
    .optional(),
  /** Sends the token over plaintext to a non-loopback address (a private network you trust). */
  plaintext: z.boolean().optional(),
};
/** `host:port`, or `{ address: host:port, tls, token_env, plaintext }`. */
const endpoint = z.preprocess(
  (v) => (typeof v === 'string' ? { address: v } : v),
  z.object({ address, ...security }).strict(),
);

/** A remote service as the pipeline connects to it: local paths absolute, the token still only named. */
export interface Endpoint {
  address: string;
  tls?: { ca: string; cert?: string; key?: string };
  tokenEnv?: string;
}

const schema = z
  .object({
    run: name,
    store: z.string().min(1).optional(),
    report: z.string().min(1).optional(),
    services: z
      .object({ anonymizer: endpoint, synthesizer: endpoint, pretrainer: endpoint, evaluator: endpoint, ...security })
      .partial()
      .strict()
      .default({}),
    input: z
      .object({
        reports: z.string().min(1),
        id_field: z.string().min(1).default('id'),
        text_field: z.string().min(1).default('text'),
        patient_field: z.string().min(1).optional(),
        image_field: z.string().min(1).optional(),
      })
      .strict(),
    anonymize: z
      .object({ mode: z.enum(['mask', 'tag', 'surrogate']).default('mask') })
      .strict()
      .default({ mode: 'mask' }),
    synthesize: z
      .object({
        model: z.string().min(1),
        num_inference_steps: z.number().int().min(1).max(1000).optional(),
        guidance_scale: z.number().min(0).optional(),
        scheduler: z.enum(['pndm', 'ddim', 'euler_ancestral', 'dpm_solver_pp_2m']).optional(),
        seed: z.number().int().min(0).default(0),
        images_per_prompt: z.number().int().min(1).max(100).default(1),
        max_attempts: z.number().int().min(1).max(10).optional(),
      })
      .strict(),
    pretrain: z
      .object({
        methods: z.array(z.enum(METHODS)).min(1),
        data: z
          .array(z.enum(['real', 'synthetic']))
          .min(1)
          .default(['real', 'synthetic']),
        /** The pretrainer's PretrainingConfig (snake_case), less method and data. */
        config: z.record(z.string(), z.unknown()).default({}),
        /**
         * Share of the reports held out of every arm's training and scored for image-to-text retrieval
         * on their real images (or on their synthetic ones in a synthetic-only run): the same images for every arm.
         */
        validation_fraction: fraction.optional(),
        /** Pre-train every arm once per seed (default: the single `config.seed`); the evaluation then pools the seeds. */
        seeds: z
          .array(z.number().int().min(0))
          .min(1)
          .refine((s) => new Set(s).size === s.length, 'must not repeat a seed')
          .optional(),
      })
      .strict(),
    evaluate: z
      .object({
        dataset: z
          .object({
            format: z.string().min(1),
            root: z.string().min(1),
            options: z.record(z.string(), z.string()).optional(),
          })
          .strict(),
        tasks: z.array(z.enum(['classification', 'segmentation', 'detection', 'zero_shot'])).min(1),
        label_fractions: z.array(fraction).min(1).optional(),
        seeds: z.array(z.number().int().min(0)).min(1).optional(),
        split_seed: z.number().int().min(0).default(0),
        max_images: z.number().int().min(8).optional(),
        epochs: z.number().int().min(1).optional(),
        report_samples: z.number().int().min(0).optional(),
        /** Add a random-init encoder of the same architecture (the comparison's floor). */
        baseline: z.boolean().default(true),
      })
      .strict(),
    export: z
      .object({
        licence: z.string().min(1),
        shard_size: z.number().int().min(1).default(1000),
        name: z.string().min(1).optional(),
        /** Where the prompts come from, for the dataset card. */
        prompts_source: z.string().min(1).optional(),
        /** The PHI recall measured for the anonymizer's mode (0..1), and where it was measured. */
        deid_recall: z.number().min(0).max(1).optional(),
        deid_recall_source: z.string().min(1).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type PipelineConfig = z.infer<typeof schema>;

/** A config with its paths resolved: local files absolute, the store a URI. */
export interface ResolvedPipelineConfig extends Omit<PipelineConfig, 'services'> {
  /** The remote services (the others are started locally), each with its own or the block's security options. */
  services: Partial<Record<ServiceName, Endpoint>>;
  store: string;
  report: string;
  /** Folder of the config file (relative paths were resolved against it). */
  base: string;
}

const keyPath = (parts: readonly PropertyKey[]) =>
  parts.reduce<string>(
    (out, p) => (typeof p === 'number' ? `${out}[${p}]` : out ? `${out}.${String(p)}` : String(p)),
    '',
  );

/**
 * Checks a pipeline config and fills defaults. Every mistake names its key; the pretraining and
 * evaluation blocks are checked by the very parsers the services use, so a bad value fails here,
 * before any stage runs, not an hour later in the pretrainer.
 */
export function parsePipelineConfig(
  raw: unknown,
  base: string,
  env: NodeJS.ProcessEnv = process.env,
): ResolvedPipelineConfig {
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const key = keyPath([...issue.path, issue.keys[0]!]);
      throw new PipelineConfigError(key, 'unknown key (see docs/pipeline.md for the keys of each section)');
    }
    throw new PipelineConfigError(keyPath(issue.path), issue.message);
  }
  const config = parsed.data;
  const local = (p: string) => path.resolve(base, p);
  const resolveUri = (p: string) =>
    /^[a-z][a-z0-9+.-]*:\/\//i.test(p)
      ? p.startsWith('file://') && !p.startsWith('file:///')
        ? pathToFileURL(local(p.slice('file://'.length))).href
        : p
      : local(p);
  const store = config.store
    ? resolveUri(config.store)
    : (env.MEDSYN_STORE ?? pathToFileURL(path.resolve('.medsyn')).href);
  const checkPretrain = (method: Method) => {
    try {
      parsePretrainingConfigWithoutPairs({ ...config.pretrain.config, method });
    } catch (error) {
      if (error instanceof PretrainingConfigError)
        throw new PipelineConfigError(`pretrain.config.${error.field}`, error.message.replace(/^[^:]*: /, ''));
      throw error;
    }
  };
  for (const key of ['method', 'data'])
    if (key in config.pretrain.config)
      throw new PipelineConfigError(
        `pretrain.config.${key}`,
        `is set by the pipeline (use pretrain.${key === 'method' ? 'methods' : 'data'})`,
      );
  config.pretrain.methods.forEach(checkPretrain);
  try {
    parseEvaluationConfigWithoutEncoders({ ...config.evaluate, epochs: undefined });
  } catch (error) {
    if (error instanceof EvaluationConfigError)
      throw new PipelineConfigError(`evaluate.${error.field}`, error.message.replace(/^[^:]*: /, ''));
    throw error;
  }
  if (config.pretrain.data.includes('real') && !config.input.image_field)
    throw new PipelineConfigError(
      'input.image_field',
      'is required to pre-train on real pairs (pretrain.data has "real")',
    );
  const reports = resolveUri(config.input.reports);
  if (/\.csv$/i.test(reports) && config.pretrain.data.includes('real'))
    throw new PipelineConfigError(
      'input.reports',
      'real pairs need a JSONL reports file (a CSV serves synthetic-only runs: pretrain.data [synthetic])',
    );
  if (!reports.includes('://') && !fs.existsSync(reports))
    throw new PipelineConfigError('input.reports', `file not found: ${reports}`);
  const model = resolveUri(config.synthesize.model);
  if (!model.includes('://') && !fs.existsSync(path.join(model, 'model_index.json')))
    throw new PipelineConfigError(
      'synthesize.model',
      `no model_index.json in ${model} (a diffusion model in the ONNX export layout)`,
    );
  const datasetRoot = local(config.evaluate.dataset.root);
  if (!fs.existsSync(datasetRoot))
    throw new PipelineConfigError('evaluate.dataset.root', `folder not found: ${datasetRoot}`);
  return {
    ...config,
    services: resolveEndpoints(config.services, local, env),
    store,
    base,
    report: config.report ? local(config.report) : path.resolve(`medsyn-report-${config.run}.html`),
    input: { ...config.input, reports },
    synthesize: { ...config.synthesize, model },
    evaluate: { ...config.evaluate, dataset: { ...config.evaluate.dataset, root: datasetRoot } },
  };
}

const isLoopbackHost = (host: string) =>
  host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);

/** Whether a bearer token sent without TLS to `host:port` would cross a network in clear (loopback does not). */
export const tokenGoesInClear = (address: string): boolean =>
  !isLoopbackHost(address.slice(0, address.lastIndexOf(':')));

/**
 * Each remote service's endpoint with its security options (its own, else those of the `services:`
 * block), checked now: the files exist, the token variable is set, and a token does not cross a
 * network in clear unless `plaintext: true` says so.
 */
function resolveEndpoints(
  services: PipelineConfig['services'],
  local: (p: string) => string,
  env: NodeJS.ProcessEnv,
): Partial<Record<ServiceName, Endpoint>> {
  const out: Partial<Record<ServiceName, Endpoint>> = {};
  for (const name of SERVICE_NAMES) {
    const given = services[name];
    if (!given) continue;
    // Field by field, the endpoint's own option wins over the block's.
    const tls = given.tls ?? services.tls;
    const tokenEnv = given.token_env ?? services.token_env;
    const plaintext = given.plaintext ?? services.plaintext;
    const where = (field: 'tls' | 'token_env') => (given[field] ? `services.${name}` : 'services');
    if (tls) {
      if (Boolean(tls.cert) !== Boolean(tls.key))
        throw new PipelineConfigError(
          `${where('tls')}.tls.${tls.cert ? 'key' : 'cert'}`,
          'a client certificate needs both cert and key (mutual TLS)',
        );
      for (const field of ['ca', 'cert', 'key'] as const) {
        const file = tls[field] && local(tls[field]);
        if (file && !fs.existsSync(file))
          throw new PipelineConfigError(`${where('tls')}.tls.${field}`, `file not found: ${file}`);
      }
    }
    if (tokenEnv) {
      if (!env[tokenEnv])
        throw new PipelineConfigError(
          `${where('token_env')}.token_env`,
          `the environment variable ${tokenEnv} is not set`,
        );
      if (!tls && !plaintext && tokenGoesInClear(given.address))
        throw new PipelineConfigError(
          `${where('token_env')}.token_env`,
          `the token would go to ${given.address} in clear; set tls (or plaintext: true on a network you trust)`,
        );
    }
    out[name] = {
      address: given.address,
      ...(tls && {
        tls: { ca: local(tls.ca), ...(tls.cert && { cert: local(tls.cert) }), ...(tls.key && { key: local(tls.key) }) },
      }),
      ...(tokenEnv && { tokenEnv }),
    };
  }
  return out;
}

/** Reads a YAML or JSON pipeline config; relative paths in it are relative to the file. */
export function readPipelineConfig(file: string, env: NodeJS.ProcessEnv = process.env): ResolvedPipelineConfig {
  if (!fs.existsSync(file)) throw new PipelineConfigError('', `config file not found: ${file}`);
  let raw: unknown;
  try {
    raw = parseYaml(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new PipelineConfigError('', `${file} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw))
    throw new PipelineConfigError('', `${file} must be a mapping`);
  return parsePipelineConfig(raw, path.dirname(path.resolve(file)), env);
}
