import * as grpc from '@grpc/grpc-js';
import { getBuffer, type ArtifactStore } from '@medsyn/artifact-store';
import type { common } from '@medsyn/proto';
import type { ResolvedPipelineConfig, ServiceName } from './config';
import { ContentHasher, stageKey } from './content';
import { JobFailedError, connect, waitForJob, type Endpoints } from './services';

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
  | { type: 'stage-verified'; stage: string; seconds: number; identical: boolean; mismatched: string[] }
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
export interface StageRecord {
  /** sha256 of everything the stage's result depends on (its config and its inputs' digests). */
  key: string;
  outputs: Record<string, string>;
  summary: Record<string, number | string>;
  seconds: number;
}

/** A finished stage done again to check that it reproduces: the digests it recorded against the new ones. */
export interface StageVerification {
  stage: string;
  identical: boolean;
  digests: { output: string; recorded: string; recomputed: string }[];
}

/** One line for a run's verifications: how many reproduced, and which did not. */
export function verificationSummary(verifications: readonly StageVerification[]): string {
  const differ = verifications.filter((v) => !v.identical);
  return `${verifications.length - differ.length} of ${verifications.length} stages done again gave identical digests${differ.length ? `; not reproduced: ${differ.map((v) => v.stage).join(', ')}` : ''}`;
}

/** What a stage's work returns; the run adds the key and the time. */
export type StageResult = Omit<StageRecord, 'key' | 'seconds'>;

export interface PipelineState {
  format: 'medsyn.pipeline-state/v1';
  run: string;
  stages: Record<string, StageRecord>;
}

const stateKeyOf = (config: ResolvedPipelineConfig) => `pipeline/${config.run}/state.json`;

/** The run's state.json, or an empty state for a new run. */
export async function readPipelineState(store: ArtifactStore, config: ResolvedPipelineConfig): Promise<PipelineState> {
  const key = stateKeyOf(config);
  return (await store.stat(key))
    ? JSON.parse((await getBuffer(store, key)).toString('utf8'))
    : { format: 'medsyn.pipeline-state/v1', run: config.run, stages: {} };
}

/**
 * A pipeline run in progress: what every stage reads (config, store, state.json, one channel per
 * service) and how a stage is run, recorded and reported.
 */
export class PipelineRun {
  /** Store prefix of everything the run writes. */
  readonly prefix: string;
  readonly hasher = new ContentHasher();
  private readonly clients = new Map<ServiceName, grpc.Client>();
  private stageIndex = 0;
  /** The verifications done so far (stages named by `verify` that state.json already held). */
  readonly verifications: StageVerification[] = [];

  constructor(
    readonly config: ResolvedPipelineConfig,
    readonly store: ArtifactStore,
    readonly state: PipelineState,
    private readonly endpoints: Endpoints,
    readonly emit: (event: PipelineEvent) => void,
    /** How many stages the run has, for the display's "[3/9]". */
    private readonly stageCount: number,
    /** Stages to do again when state.json holds them, comparing their output digests (see verifies). */
    private readonly verify: readonly string[] = [],
  ) {
    this.prefix = `pipeline/${config.run}/`;
  }

  /** Runs a stage unless state.json holds it with the same key (then, if it is to be verified, does it again to compare). */
  async stage(name: string, inputs: unknown, work: (requestId: string) => Promise<StageResult>): Promise<StageRecord> {
    const key = stageKey(inputs);
    const done = this.state.stages[name];
    this.emitStageStart(name, done?.key === key);
    const requestId = `${this.config.run}-${name.replace(/\s+/g, '-')}-${key.slice(0, 16)}`;
    if (done?.key === key) {
      if (verifies(this.verify, name)) await this.verifyStage(name, done, work, requestId);
      else this.emit({ type: 'stage-done', stage: name, seconds: done.seconds, skipped: true, summary: done.summary });
      return done;
    }
    const started = Date.now();
    const result = await runWork(name, work, requestId);
    const record: StageRecord = { key, ...result, seconds: (Date.now() - started) / 1000 };
    this.state.stages[name] = record;
    await this.store.put(stateKeyOf(this.config), JSON.stringify(this.state, null, 1), {
      mediaType: 'application/json',
    });
    this.emit({ type: 'stage-done', stage: name, seconds: record.seconds, skipped: false, summary: record.summary });
    return record;
  }

  /**
   * Does a finished stage again under its own request id and output folder (the recorded outputs,
   * which later stages read, stay as they are) and compares every digest it records.
   */
  private async verifyStage(
    name: string,
    done: StageRecord,
    work: (requestId: string) => Promise<StageResult>,
    requestId: string,
  ): Promise<void> {
    const outputs = Object.keys(done.outputs).filter((o) => o.endsWith('sha256'));
    if (!outputs.length)
      throw new PipelineStageError(name, 'records no digest of its outputs, so it cannot be verified');
    const started = Date.now();
    // jobPrefix takes the last 16 characters: a folder of its own.
    const again = await runWork(name, work, `${requestId}-verify-${stageKey([done.key, 'verify']).slice(0, 16)}`);
    const digests = outputs.map((output) => ({
      output,
      recorded: done.outputs[output]!,
      recomputed: again.outputs[output] ?? '',
    }));
    const verification = { stage: name, identical: digests.every((d) => d.recorded === d.recomputed), digests };
    this.verifications.push(verification);
    this.emit({
      type: 'stage-verified',
      stage: name,
      seconds: (Date.now() - started) / 1000,
      identical: verification.identical,
      mismatched: digests.filter((d) => d.recorded !== d.recomputed).map((d) => d.output),
    });
  }

  /** Announces a stage that state.json does not record (the report, written on every run). */
  emitStageStart(name: string, resumed = false): void {
    this.emit({ type: 'stage', stage: name, index: this.stageIndex++, total: this.stageCount, resumed });
  }

  /** The run's one channel to a service. */
  client<C extends grpc.Client>(
    Client: new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => C,
    service: ServiceName,
  ): C {
    if (!this.clients.has(service)) this.clients.set(service, connect(Client, this.endpoints[service]));
    return this.clients.get(service) as C;
  }

  /** Waits for a service's job to finish, passing its progress to the display as the stage's. */
  async follow(stage: string, service: ServiceName, job: common.Job | undefined): Promise<common.Job> {
    if (!job) throw new PipelineStageError(stage, 'the service returned no job');
    return waitForJob(this.endpoints[service], job.jobId, (j) => {
      const p = j.progress;
      if (p)
        this.emit({
          type: 'progress',
          stage,
          completed: Number(p.completed),
          total: Number(p.total),
          unit: p.unit,
          phase: p.phase,
          etaSeconds: p.etaSeconds,
          ratePerSecond: p.ratePerSecond,
        });
    });
  }

  /** A reference to an object the run wrote, with the sha256 and size the store holds, so the service can check what it reads. */
  async refOf(key: string) {
    const ref = await this.store.stat(key);
    if (!ref) throw new Error(`${this.store.uriOf(key)} is missing from the store`);
    return ref;
  }

  /** A job's output folder holds its stage key: a rerun with other inputs writes beside an earlier result, never over it (a job owns its prefix). */
  jobPrefix(folder: string, requestId: string): string {
    return `${this.prefix}${folder}/${requestId.slice(-16)}/`;
  }

  closeClients(): void {
    for (const c of this.clients.values()) c.close();
  }
}

/** Whether a `verify` entry names the stage: the whole name, or its first word ("pretrain" is every arm). */
export function verifies(verify: readonly string[], stage: string): boolean {
  return verify.some((v) => stage === v || stage.startsWith(`${v} `));
}

async function runWork(
  name: string,
  work: (requestId: string) => Promise<StageResult>,
  requestId: string,
): Promise<StageResult> {
  try {
    return await work(requestId);
  } catch (error) {
    throw error instanceof PipelineStageError ? error : new PipelineStageError(name, describe(error));
  }
}

function describe(error: unknown): string {
  if (error instanceof JobFailedError) return error.message;
  const e = error as grpc.ServiceError;
  if (typeof e?.code === 'number' && e.details !== undefined) return `${grpc.status[e.code]}: ${e.details}`;
  return (error as Error)?.message ?? String(error);
}
