import { EXECUTION_PROVIDERS, type ExecutionProvider } from './execution-provider';
import type { ImageArchitecture } from './image-architecture';

/** A class's prompt pair (CheXzero, Tiu et al. 2022: "<finding>" vs "no <finding>"). */
export interface PromptPair {
  positive: string;
  negative: string;
}

export type TaskName = 'classification' | 'segmentation' | 'detection' | 'zero_shot';
export const TASKS: readonly TaskName[] = ['classification', 'segmentation', 'detection', 'zero_shot'];

/** An evaluation, as YAML/JSON configs, the CLI and the gRPC request spell it (snake_case keys). */
export interface EvaluationConfig {
  /**
   * A bundle folder, or `baseline`: a seeded random-init model-zoo encoder built on the fly
   * (the comparison's random-init row).
   */
  encoders: { name: string; bundle?: string; baseline?: BaselineEncoder; pretraining_data?: string }[];
  dataset: { format: string; root: string; options?: Record<string, string> };
  tasks: TaskName[];
  label_fractions?: number[];
  seeds?: number[];
  /** Seed of the patient-grouped train/validation/test split, shared by all encoders and runs. */
  split_seed?: number;
  /** Use at most this many images per task (a seeded subset; CPU-sized runs). */
  max_images?: number;
  epochs?: Partial<Record<'classification' | 'segmentation' | 'detection', number>>;
  execution_provider?: ExecutionProvider;
  prompts?: Record<string, PromptPair>;
  /** Test images drawn in the report with their masks and boxes (default 4). */
  report_samples?: number;
  /** Folders of example images shown side by side in the report (e.g. real vs synthetic). */
  sample_grids?: Record<string, string>;
}

/** A random-init encoder from the zoo through @medsyn/encoder-bundle's exporter. */
export interface BaselineEncoder {
  architecture: ImageArchitecture;
  size: number;
  width?: number;
  seed?: number;
}

export class EvaluationConfigError extends Error {
  override name = 'EvaluationConfigError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/**
 * Upper bounds no real comparison reaches (docs/evaluator.md): a request past them is refused
 * naming the field, before it can ask for billions of runs or a 1-megapixel-wide encoder input.
 */
export const EVALUATION_LIMITS = {
  encoders: 32,
  baseline_size: 1024,
  baseline_width: 4096,
  label_fractions: 16,
  seeds: 32,
  max_images: 10_000_000,
  epochs: 10_000,
  report_samples: 64,
} as const;

/** An evaluation config checked, with its defaults filled in. */
export type ParsedEvaluationConfig = Required<
  Omit<EvaluationConfig, 'prompts' | 'epochs' | 'max_images' | 'sample_grids'>
> &
  Pick<EvaluationConfig, 'prompts' | 'epochs' | 'max_images' | 'sample_grids'>;

/** Checks a parsed config (YAML, JSON or a request) and fills defaults; errors name the field. */
export function parseEvaluationConfig(value: unknown): ParsedEvaluationConfig {
  const c = (value ?? {}) as Partial<EvaluationConfig>;
  const encoders = checkEncoders(c.encoders);
  return { encoders, ...parseEvaluationConfigWithoutEncoders(c) };
}

/** The encoders to evaluate: at least one, each a bundle or a random-init baseline, names unique. */
function checkEncoders(encoders: EvaluationConfig['encoders'] | undefined): EvaluationConfig['encoders'] {
  if (!Array.isArray(encoders) || encoders.length === 0)
    throw new EvaluationConfigError('encoders', 'at least one encoder is required');
  if (encoders.length > EVALUATION_LIMITS.encoders)
    throw new EvaluationConfigError(
      'encoders',
      `at most ${EVALUATION_LIMITS.encoders} encoders, got ${encoders.length}`,
    );
  const names = new Set<string>();
  encoders.forEach((e, i) => {
    if (!e || typeof e.name !== 'string' || !e.name)
      throw new EvaluationConfigError(`encoders[${i}].name`, 'is required');
    if (!e.baseline === !e.bundle)
      throw new EvaluationConfigError(
        `encoders[${i}].bundle`,
        'give exactly one of bundle (a bundle folder) and baseline (a random-init encoder)',
      );
    if (e.bundle !== undefined && typeof e.bundle !== 'string')
      throw new EvaluationConfigError(`encoders[${i}].bundle`, 'must be a folder path');
    if (
      e.baseline &&
      !(
        Number.isInteger(e.baseline.size) &&
        e.baseline.size >= 16 &&
        e.baseline.size <= EVALUATION_LIMITS.baseline_size
      )
    )
      throw new EvaluationConfigError(
        `encoders[${i}].baseline.size`,
        `must be an integer from 16 to ${EVALUATION_LIMITS.baseline_size}`,
      );
    if (
      e.baseline?.width !== undefined &&
      !(
        Number.isInteger(e.baseline.width) &&
        e.baseline.width >= 1 &&
        e.baseline.width <= EVALUATION_LIMITS.baseline_width
      )
    )
      throw new EvaluationConfigError(
        `encoders[${i}].baseline.width`,
        `must be an integer from 1 to ${EVALUATION_LIMITS.baseline_width}`,
      );
    if (names.has(e.name)) throw new EvaluationConfigError(`encoders[${i}].name`, `"${e.name}" is used twice`);
    names.add(e.name);
  });
  return encoders;
}

/**
 * Every check of parseEvaluationConfig but the encoders': for a config whose encoders do not exist yet (a
 * pipeline's `evaluate` section, before its pre-training arms have made them).
 */
export function parseEvaluationConfigWithoutEncoders(value: unknown): Omit<ParsedEvaluationConfig, 'encoders'> {
  const c = (value ?? {}) as Partial<EvaluationConfig>;
  if (!c.dataset || typeof c.dataset.format !== 'string' || !c.dataset.format)
    throw new EvaluationConfigError('dataset.format', 'is required');
  if (typeof c.dataset.root !== 'string' || !c.dataset.root)
    throw new EvaluationConfigError('dataset.root', 'is required');
  if (!Array.isArray(c.tasks) || c.tasks.length === 0)
    throw new EvaluationConfigError('tasks', 'at least one task is required');
  c.tasks.forEach((t, i) => {
    if (!TASKS.includes(t))
      throw new EvaluationConfigError(`tasks[${i}]`, `unknown task "${t}" (known: ${TASKS.join(', ')})`);
  });
  const fractions = c.label_fractions ?? [0.01, 0.1, 1];
  if (fractions.length > EVALUATION_LIMITS.label_fractions)
    throw new EvaluationConfigError(
      'label_fractions',
      `at most ${EVALUATION_LIMITS.label_fractions} fractions, got ${fractions.length}`,
    );
  fractions.forEach((f, i) => {
    if (!(typeof f === 'number' && f > 0 && f <= 1))
      throw new EvaluationConfigError(`label_fractions[${i}]`, 'must be in (0, 1]');
  });
  const seeds = c.seeds ?? [0, 1, 2];
  seeds.forEach((s, i) => {
    if (!Number.isSafeInteger(s) || s < 0)
      throw new EvaluationConfigError(`seeds[${i}]`, 'must be an integer from 0 to 2^53 - 1');
  });
  if (seeds.length > EVALUATION_LIMITS.seeds)
    throw new EvaluationConfigError('seeds', `at most ${EVALUATION_LIMITS.seeds} seeds, got ${seeds.length}`);
  if (seeds.length === 0) throw new EvaluationConfigError('seeds', 'at least one seed is required');
  if (
    c.max_images !== undefined &&
    !(Number.isInteger(c.max_images) && c.max_images >= 8 && c.max_images <= EVALUATION_LIMITS.max_images)
  )
    throw new EvaluationConfigError('max_images', `must be an integer from 8 to ${EVALUATION_LIMITS.max_images}`);
  for (const [task, n] of Object.entries(c.epochs ?? {})) {
    if (n !== undefined && !(Number.isInteger(n) && n >= 1 && n <= EVALUATION_LIMITS.epochs))
      throw new EvaluationConfigError(`epochs.${task}`, `must be an integer from 1 to ${EVALUATION_LIMITS.epochs}`);
  }
  if (
    c.report_samples !== undefined &&
    !(
      Number.isInteger(c.report_samples) &&
      c.report_samples >= 0 &&
      c.report_samples <= EVALUATION_LIMITS.report_samples
    )
  )
    throw new EvaluationConfigError(
      'report_samples',
      `must be an integer from 0 to ${EVALUATION_LIMITS.report_samples}`,
    );
  const provider = c.execution_provider ?? 'cpu';
  if (!EXECUTION_PROVIDERS.includes(provider))
    throw new EvaluationConfigError('execution_provider', `must be cpu, cuda or webgpu, got "${provider}"`);
  return {
    dataset: { format: c.dataset.format, root: c.dataset.root, options: c.dataset.options ?? {} },
    tasks: c.tasks,
    label_fractions: fractions,
    seeds,
    split_seed: c.split_seed ?? 0,
    max_images: c.max_images,
    epochs: c.epochs,
    execution_provider: provider,
    prompts: c.prompts,
    report_samples: c.report_samples ?? 4,
    sample_grids: c.sample_grids,
  };
}
