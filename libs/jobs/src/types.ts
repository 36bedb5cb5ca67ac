import type { ArtifactRef } from '@medsyn/artifact-store';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const TERMINAL_STATES: ReadonlySet<JobState> = new Set(['succeeded', 'failed', 'cancelled']);

export interface JobProgress {
  completed: number;
  total: number;
  unit: string;
  ratePerSecond: number;
  etaSeconds: number;
  phase: string;
  metrics: Record<string, number>;
  failed: number;
}

/** Why a job failed; the message never carries PHI (it names fields and record ids only). */
export interface JobErrorDetail {
  code: string;
  message: string;
  field?: string;
  recordId?: string;
}

/** A job as persisted (JSON) in the artifact store under `jobs/<service>/<job id>.json`. */
export interface JobRecord {
  jobId: string;
  requestId: string;
  /** sha256 of the canonical start request: a reused request id with other parameters is a conflict. */
  requestDigest: string;
  kind: string;
  state: JobState;
  progress: JobProgress;
  createTime: string;
  updateTime: string;
  endTime?: string;
  error?: JobErrorDetail;
  outputs: ArtifactRef[];
  /** The start request, kept so that a restarted service can resume the job. */
  spec: unknown;
  /** The store prefix this job owns (when its service names one). */
  outputPrefix?: string;
}

/** What a running job sees: its record, a cancellation signal and ways to report. */
export interface JobContext {
  readonly jobId: string;
  readonly spec: unknown;
  /** Aborted on CancelJob (reason "cancelled") or on service shutdown (reason "shutdown"). */
  readonly signal: AbortSignal;
  /** Merges into the job's progress; watchers see it at once, the store within a second. */
  report(progress: Partial<JobProgress>): void;
  /** Records an artifact the job wrote. */
  addOutput(ref: ArtifactRef): void;
}

/** The work of one kind of job. Resolve to succeed, throw to fail; honour ctx.signal. */
export type JobRunner = (ctx: JobContext) => Promise<void>;
