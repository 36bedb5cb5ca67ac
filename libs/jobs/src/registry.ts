import { EventEmitter, on } from 'node:events';
import { canonicalDigest, getBuffer, sha256Hex, type ArtifactStore } from '@medsyn/artifact-store';
import { JobConflictError, JobError, JobFailure, JobNotFoundError } from './errors';
import {
  TERMINAL_STATES,
  type JobContext,
  type JobProgress,
  type JobRecord,
  type JobRunner,
  type JobState,
} from './types';

const JOB_STATES: JobState[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

export interface JobRegistryOptions {
  store: ArtifactStore;
  /** Owning service; records live under `jobs/<service>/`. */
  service: string;
  /** Runners by job kind: how a job is (re)started, also after a restart of the service. */
  runners: Record<string, JobRunner>;
  /** Most frequent progress write to the store per job (watchers are told at once). */
  persistIntervalMs?: number;
  /** Jobs running at once; more wait in state "queued" (in start order) for a slot. Default: no limit. */
  maxRunning?: number;
  /** Told when a job ends or a record cannot be written; never given request payloads. */
  onEvent?: (event: { jobId: string; kind: string; state: string; code?: string; message?: string }) => void;
}

export interface StartJobRequest {
  requestId: string;
  kind: string;
  /** The validated start request as plain JSON; persisted so the job can resume. */
  spec: unknown;
  /** Where the job writes in the store: validated, and owned by this job (see claimOutputPrefix). */
  outputPrefix?: string;
}

/** The registry's own folder: no job may write there (a planted record would load as a job). */
export const RESERVED_PREFIX = 'jobs/';
const MAX_PREFIX_LENGTH = 512;

/**
 * A store prefix a job may write under: relative, `/`-separated, ending in `/`, no `.`/`..` or
 * empty segment, no control characters or backslashes, outside `jobs/`. Throws INVALID_ARGUMENT
 * naming output_prefix.
 */
export function validateOutputPrefix(prefix: string): void {
  const problem = !prefix.endsWith('/')
    ? 'must end with "/"'
    : prefix.startsWith('/')
      ? 'must be relative to the store (no leading "/")'
      : prefix.length > MAX_PREFIX_LENGTH
        ? `must be at most ${MAX_PREFIX_LENGTH} characters`
        : /[\u0000-\u001f\u007f\\]/.test(prefix)
          ? 'must not contain control characters or "\\"'
          : prefix
                .slice(0, -1)
                .split('/')
                .some((part) => part === '' || part === '.' || part === '..')
            ? 'must not contain "..", "." or empty segments'
            : prefix.startsWith(RESERVED_PREFIX)
              ? `must not be under "${RESERVED_PREFIX}" (reserved for job records)`
              : undefined;
  if (problem) throw new JobError(`output_prefix ${problem}`, 'INVALID_ARGUMENT', 'output_prefix');
}

/** Who owns an output prefix, persisted at `jobs/owners/<sha256 of the prefix>.json` (shared by all services on a store). */
interface PrefixClaim {
  prefix: string;
  service: string;
  jobId: string;
  requestDigest: string;
}

interface LiveJob {
  record: JobRecord;
  controller?: AbortController;
  lastPersist: number;
  persistTimer?: NodeJS.Timeout;
  running?: Promise<void>;
}

const emptyProgress = (): JobProgress => ({
  completed: 0,
  total: 0,
  unit: '',
  ratePerSecond: 0,
  etaSeconds: 0,
  phase: '',
  metrics: {},
  failed: 0,
});

/**
 * A service's jobs. Start is idempotent by request id (the job id is derived from it, so a
 * retried start finds the same job); every state change is persisted in the artifact store, and
 * jobs left unfinished by a crash or shutdown are resumed by their runner on load().
 */
export class JobRegistry {
  private readonly jobs = new Map<string, LiveJob>();
  private readonly events = new EventEmitter();
  private closing = false;
  private runningCount = 0;
  private readonly waitingForSlot: Array<() => void> = [];

  constructor(private readonly options: JobRegistryOptions) {
    this.events.setMaxListeners(0);
  }

  /** Reads persisted jobs and resumes the unfinished ones. Call once at service start. */
  async load(): Promise<void> {
    for await (const object of this.options.store.list(`${this.prefix()}`)) {
      if (!object.key.endsWith('.json')) continue;
      const record = JSON.parse((await getBuffer(this.options.store, object.key)).toString('utf8')) as JobRecord;
      const live: LiveJob = { record, lastPersist: Date.now() };
      this.jobs.set(record.jobId, live);
      if (!TERMINAL_STATES.has(record.state)) this.launch(live);
    }
  }

  async start(request: StartJobRequest): Promise<JobRecord> {
    if (!request.requestId)
      throw new JobError(
        'request_id is required (an idempotency key of your choice)',
        'INVALID_ARGUMENT',
        'request_id',
      );
    if (request.requestId.length > 256)
      throw new JobError('request_id is longer than 256 characters', 'INVALID_ARGUMENT', 'request_id');
    if (!this.options.runners[request.kind])
      throw new JobError(`unknown job kind ${JSON.stringify(request.kind)}`, 'INVALID_ARGUMENT', 'kind');
    if (this.closing) throw new JobError('service is shutting down', 'FAILED_PRECONDITION');
    if (request.outputPrefix !== undefined) validateOutputPrefix(request.outputPrefix);
    const jobId = this.jobIdFor(request.kind, request.requestId);
    const requestDigest = canonicalDigest(request.spec);
    const attach = () => {
      const existing = this.jobs.get(jobId);
      if (existing && existing.record.requestDigest !== requestDigest) throw new JobConflictError(request.requestId);
      return existing && this.snapshot(existing.record);
    };
    const attached = attach();
    if (attached) return attached;
    if (request.outputPrefix !== undefined) {
      await this.claimOutputPrefix(request.outputPrefix, jobId, requestDigest);
      // The same request may have started while the claim was being written.
      const raced = attach();
      if (raced) return raced;
    }
    const now = new Date().toISOString();
    const live: LiveJob = {
      record: {
        jobId,
        requestId: request.requestId,
        requestDigest,
        kind: request.kind,
        state: 'queued',
        progress: emptyProgress(),
        createTime: now,
        updateTime: now,
        outputs: [],
        spec: request.spec,
        ...(request.outputPrefix !== undefined ? { outputPrefix: request.outputPrefix } : {}),
      },
      lastPersist: 0,
    };
    this.jobs.set(jobId, live);
    await this.persist(live);
    this.launch(live);
    return this.snapshot(live.record);
  }

  get(jobId: string): JobRecord {
    const live = this.jobs.get(jobId);
    if (!live) throw new JobNotFoundError(jobId);
    return this.snapshot(live.record);
  }

  /** Jobs newest first, a page at a time; the token is an opaque offset. */
  list(pageSize = 50, pageToken = ''): { jobs: JobRecord[]; nextPageToken: string } {
    const size = Math.min(Math.max(pageSize || 50, 1), 1000);
    const decoded = /^offset:(\d+)$/.exec(Buffer.from(pageToken, 'base64url').toString());
    if (pageToken && !decoded)
      throw new JobError('page_token is not one this service issued', 'INVALID_ARGUMENT', 'page_token');
    const offset = decoded ? Number(decoded[1]) : 0;
    const all = [...this.jobs.values()]
      .map((j) => j.record)
      .sort((a, b) =>
        a.createTime < b.createTime ? 1 : a.createTime > b.createTime ? -1 : a.jobId.localeCompare(b.jobId),
      );
    const page = all.slice(offset, offset + size).map((r) => this.snapshot(r));
    const next = offset + size < all.length ? Buffer.from(`offset:${offset + size}`).toString('base64url') : '';
    return { jobs: page, nextPageToken: next };
  }

  /** How many jobs are in each state, per kind; every registered kind and state appears (0 included). */
  counts(): Array<{ kind: string; state: JobState; count: number }> {
    const key = (kind: string, state: JobState) => `${kind}\u0000${state}`;
    const counts = new Map<string, number>();
    for (const { record } of this.jobs.values())
      counts.set(key(record.kind, record.state), (counts.get(key(record.kind, record.state)) ?? 0) + 1);
    const kinds = new Set([...Object.keys(this.options.runners), ...[...this.jobs.values()].map((j) => j.record.kind)]);
    return [...kinds].flatMap((kind) =>
      JOB_STATES.map((state) => ({ kind, state, count: counts.get(key(kind, state)) ?? 0 })),
    );
  }

  /** The job now, then after every change, ending after its terminal state (or when signal aborts). */
  async *watch(jobId: string, signal?: AbortSignal): AsyncIterable<JobRecord> {
    const live = this.jobs.get(jobId);
    if (!live) throw new JobNotFoundError(jobId);
    const changes = on(this.events, jobId, { signal });
    yield this.snapshot(live.record);
    if (TERMINAL_STATES.has(live.record.state)) return;
    try {
      for await (const [record] of changes as AsyncIterable<[JobRecord]>) {
        yield record;
        if (TERMINAL_STATES.has(record.state)) return;
      }
    } catch (error) {
      if ((error as Error).name !== 'AbortError') throw error;
    }
  }

  /** Asks a job to stop. Finished work is kept; a job already ended is returned as it is. */
  async cancel(jobId: string): Promise<JobRecord> {
    const live = this.jobs.get(jobId);
    if (!live) throw new JobNotFoundError(jobId);
    if (TERMINAL_STATES.has(live.record.state)) return this.snapshot(live.record);
    if (live.controller) {
      live.controller.abort('cancelled');
      await live.running;
    } else {
      await this.finish(live, 'cancelled');
    }
    return this.snapshot(live.record);
  }

  /** Stops running jobs for shutdown: they stay unfinished in the store and resume on next load(). */
  async close(): Promise<void> {
    this.closing = true;
    const running = [...this.jobs.values()].filter((j) => j.running);
    for (const job of running) job.controller?.abort('shutdown');
    await Promise.all(running.map((j) => j.running));
    for (const job of this.jobs.values()) clearTimeout(job.persistTimer);
    await Promise.all([...this.jobs.values()].map((j) => this.persist(j)));
  }

  /**
   * Makes `prefix` this job's: a prefix already owned by another job with other parameters is
   * refused (FAILED_PRECONDITION naming output_prefix), so a job never reports another's results as
   * its own. The same parameters under another request id may share it (their outputs are equal).
   * The claim is created only where none is (putIfAbsent), so of two starts racing for a prefix,
   * in this process or in another replica on the same store, one writes it and the other reads it.
   */
  private async claimOutputPrefix(prefix: string, jobId: string, requestDigest: string): Promise<void> {
    const key = `${RESERVED_PREFIX}owners/${sha256Hex(prefix)}.json`;
    const claim: PrefixClaim = { prefix, service: this.options.service, jobId, requestDigest };
    if (await this.options.store.putIfAbsent(key, JSON.stringify(claim), { mediaType: 'application/json' })) return;
    const owner = JSON.parse((await getBuffer(this.options.store, key)).toString('utf8')) as PrefixClaim;
    if (owner.jobId === jobId || owner.requestDigest === requestDigest) return;
    throw new JobError(
      `output_prefix ${JSON.stringify(prefix)} belongs to job ${owner.jobId}, started with other parameters; choose another output_prefix`,
      'FAILED_PRECONDITION',
      'output_prefix',
    );
  }

  /** Waits for one of maxRunning slots; false when the job is cancelled or stopped while it waits. */
  private acquireSlot(signal: AbortSignal): Promise<boolean> {
    if (signal.aborted) return Promise.resolve(false);
    if (this.runningCount < (this.options.maxRunning ?? Infinity)) {
      this.runningCount++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const grant = () => {
        signal.removeEventListener('abort', giveUp);
        this.runningCount++;
        resolve(true);
      };
      const giveUp = () => {
        this.waitingForSlot.splice(this.waitingForSlot.indexOf(grant), 1);
        resolve(false);
      };
      this.waitingForSlot.push(grant);
      signal.addEventListener('abort', giveUp, { once: true });
    });
  }

  private releaseSlot(): void {
    this.runningCount--;
    this.waitingForSlot.shift()?.();
  }

  private launch(live: LiveJob): void {
    const runner = this.options.runners[live.record.kind];
    if (!runner) {
      live.running = this.finish(live, 'failed', {
        code: 'UNAVAILABLE',
        message: `no runner for job kind ${live.record.kind} in this version`,
      });
      return;
    }
    const controller = new AbortController();
    live.controller = controller;
    const ctx: JobContext = {
      jobId: live.record.jobId,
      spec: live.record.spec,
      signal: controller.signal,
      report: (progress) =>
        this.update(live, {
          progress: {
            ...live.record.progress,
            ...progress,
            metrics: { ...live.record.progress.metrics, ...progress.metrics },
          },
        }),
      addOutput: (ref) =>
        this.update(live, { outputs: [...live.record.outputs.filter((o) => o.uri !== ref.uri), ref] }),
    };
    live.running = (async () => {
      // Let start() return before the work begins.
      await new Promise((resolve) => setImmediate(resolve));
      if (!(await this.acquireSlot(controller.signal))) {
        await this.stopped(live, controller.signal.reason);
        live.controller = undefined;
        live.running = undefined;
        return;
      }
      this.update(live, { state: 'running' });
      try {
        await runner(ctx);
        if (controller.signal.aborted) await this.stopped(live, controller.signal.reason);
        else await this.finish(live, 'succeeded');
      } catch (error) {
        if (controller.signal.aborted) await this.stopped(live, controller.signal.reason);
        else await this.finish(live, 'failed', failureDetail(error));
      } finally {
        this.releaseSlot();
        live.controller = undefined;
        live.running = undefined;
      }
    })();
  }

  private async stopped(live: LiveJob, reason: unknown): Promise<void> {
    // On shutdown the job stays unfinished so that the next start resumes it.
    if (reason === 'shutdown') await this.persist(live);
    else await this.finish(live, 'cancelled');
  }

  private async finish(live: LiveJob, state: JobRecord['state'], error?: JobRecord['error']): Promise<void> {
    const now = new Date().toISOString();
    this.update(live, { state, endTime: now, ...(error ? { error } : {}) }, false);
    clearTimeout(live.persistTimer);
    await this.persist(live);
    this.options.onEvent?.({
      jobId: live.record.jobId,
      kind: live.record.kind,
      state,
      code: error?.code,
      message: error?.message,
    });
  }

  private update(live: LiveJob, change: Partial<JobRecord>, schedulePersist = true): void {
    live.record = { ...live.record, ...change, updateTime: new Date().toISOString() };
    this.events.emit(live.record.jobId, this.snapshot(live.record));
    if (!schedulePersist || live.persistTimer) return;
    const wait = Math.max(0, live.lastPersist + (this.options.persistIntervalMs ?? 1000) - Date.now());
    live.persistTimer = setTimeout(() => {
      live.persistTimer = undefined;
      void this.persist(live);
    }, wait);
    live.persistTimer.unref();
  }

  private async persist(live: LiveJob): Promise<void> {
    live.lastPersist = Date.now();
    try {
      await this.options.store.put(`${this.prefix()}${live.record.jobId}.json`, JSON.stringify(live.record), {
        mediaType: 'application/json',
      });
    } catch (error) {
      this.options.onEvent?.({
        jobId: live.record.jobId,
        kind: live.record.kind,
        state: live.record.state,
        code: 'PERSIST_FAILED',
        message: (error as Error).message,
      });
    }
  }

  private jobIdFor(kind: string, requestId: string): string {
    return `${kind.replace(/_/g, '-')}-${sha256Hex(`${this.options.service}\0${kind}\0${requestId}`).slice(0, 20)}`;
  }

  private prefix(): string {
    return `jobs/${this.options.service}/`;
  }

  private snapshot(record: JobRecord): JobRecord {
    return structuredClone(record);
  }
}

function failureDetail(error: unknown): NonNullable<JobRecord['error']> {
  if (error instanceof JobFailure)
    return { code: error.code, message: error.message, field: error.field, recordId: error.recordId };
  // Unexpected errors may carry data in their message: report the type only.
  return { code: 'INTERNAL', message: `job failed with an internal error (${(error as Error)?.name ?? 'unknown'})` };
}
