import * as path from 'node:path';
import { openStore } from '@medsyn/artifact-store';
import type { Method } from '@medsyn/config';
import type { EvaluationResults } from '@medsyn/evaluation-report';
import type { PairSource } from '@medsyn/dataset';
import { SERVICE_NAMES, type ResolvedPipelineConfig } from './config';
import {
  PipelineRun,
  readPipelineState,
  verifies,
  type PipelineEvent,
  type StageRecord,
  type StageVerification,
} from './pipeline-run';
import { startLocalServices, type Endpoints } from './services';
import {
  anonymize,
  anonymizedTexts,
  evaluate,
  exportSynthetic,
  pretrain,
  pretrainData,
  readReports,
  realPairs,
  synthesize,
  writeReport,
  type PairStages,
} from './stages';

export interface PipelineResult {
  /** Local path of the HTML report. */
  report: string;
  /** Store prefix of everything the run wrote. */
  prefix: string;
  stages: Record<string, StageRecord>;
  results: EvaluationResults;
  /** The stages `verify` named that were done again, and whether each reproduced its digests. */
  verifications: StageVerification[];
}

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

/** The run's stages in order, as the display counts them (docs/pipeline.md, "What it does"). */
export function stageNames(config: ResolvedPipelineConfig): string[] {
  return [
    'anonymize',
    ...(config.pretrain.data.includes('real') ? ['real-pairs'] : []),
    'synthesize',
    'pretrain-data',
    ...pretrainingRuns(config).map((a) => `pretrain ${a.name}`),
    'evaluate',
    ...(config.export ? ['export'] : []),
    'report',
  ];
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
 *
 * `verify` names stages ("pretrain": every arm) to do again when state.json holds them, each under
 * a request id and output folder of its own, comparing the output digests they recorded (pre-training
 * is bit-reproducible: `verify: ['pretrain']` checks it on a whole run). Later stages still read the
 * recorded outputs.
 */
export async function runPipeline(
  config: ResolvedPipelineConfig,
  options: {
    onEvent?: (event: PipelineEvent) => void;
    logDir?: string;
    env?: NodeJS.ProcessEnv;
    verify?: string[];
  } = {},
): Promise<PipelineResult> {
  const emit = options.onEvent ?? (() => {});
  const names = stageNames(config);
  const verify = options.verify ?? [];
  for (const v of verify)
    if (!names.some((n) => verifies([v], n)))
      throw new Error(`verify: no stage ${v} in this run (stages: ${names.join(', ')})`);
  const store = openStore(config.store);
  await store.check();
  const state = await readPipelineState(store, config);

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
  const run = new PipelineRun(config, store, state, endpoints, emit, names.length, verify);

  try {
    const reports = await readReports(run);
    const anonymized = await anonymize(run, reports);
    const texts = await anonymizedTexts(run, anonymized);
    const pairs: PairStages = {};
    if (config.pretrain.data.includes('real')) pairs.real = await realPairs(run, reports, anonymized, texts);
    pairs.synthetic = await synthesize(run, anonymized, texts);
    const shared = await pretrainData(run, pairs);
    const encoders = [];
    for (const arm of pretrainingRuns(config)) encoders.push(await pretrain(run, arm, pairs, shared));
    const evaluated = await evaluate(run, encoders);
    if (config.export) await exportSynthetic(run, anonymized, pairs.synthetic);
    const results = await writeReport(run, evaluated, pairs);
    return {
      report: config.report,
      prefix: run.prefix,
      stages: state.stages,
      results,
      verifications: run.verifications,
    };
  } finally {
    run.closeClients();
    await local?.stop();
    await store.close();
  }
}
