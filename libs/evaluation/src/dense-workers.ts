import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { Box } from '@medsyn/evaluation-report';
import {
  trainDetection,
  trainSegmentation,
  type DenseTrainOptions,
  type DetectionResult,
  type FeatureMaps,
  type SegmentationResult,
} from './dense-tasks';

type Rows = { train: number[]; validation: number[]; test: number[] };
/** Options that cross to a worker: no callbacks. */
type JobOptions = Omit<DenseTrainOptions, 'onEpoch'>;

/** One dense head's training run, with everything it reads (maps and masks in shared memory cross uncopied). */
export type DenseJob =
  | { task: 'segmentation'; maps: FeatureMaps; masks: Uint8Array[]; size: number; rows: Rows; options: JobOptions }
  | { task: 'detection'; maps: FeatureMaps; boxes: Box[][]; classes: number; rows: Rows; options: JobOptions };

export type DenseJobResult<J extends DenseJob> = J extends { task: 'segmentation' }
  ? SegmentationResult
  : DetectionResult;

/** A job's result and how long it ran (not counting time in a queue). */
export interface DenseJobDone<J extends DenseJob> {
  result: DenseJobResult<J>;
  seconds: number;
}

export async function runDenseJob<J extends DenseJob>(job: J): Promise<DenseJobDone<J>> {
  const started = performance.now();
  const result = await (job.task === 'segmentation'
    ? trainSegmentation(job.maps, job.masks, job.size, job.rows, job.options)
    : trainDetection(job.maps, job.boxes, job.classes, job.rows, job.options));
  return { result: result as DenseJobResult<J>, seconds: Math.round(performance.now() - started) / 1000 };
}

/**
 * `fn` with its calls run one at a time, in call order: a call starts when the previous one has
 * settled. What the calling thread does with dense runs when there are no workers (one session
 * at a time, as on a GPU, and each run's seconds its own).
 */
export function oneAtATime<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  let last: Promise<unknown> = Promise.resolve();
  return (...args) => {
    const next = last.then(() => fn(...args));
    last = next.catch(() => undefined);
    return next;
  };
}

type ToWorker = { job: DenseJob };
type FromWorker = { done?: DenseJobDone<DenseJob>; error?: string; errorName?: string };

/**
 * Worker threads that train dense heads, one job each at a time, queued in the order given.
 * onnxruntime-node's session.run holds its thread for the whole run, and a small head keeps two
 * intra-op threads no busier than one (docs/evaluator.md, "Dense runs in parallel"): so
 * independent runs (label fractions, seeds) go to one worker per core, each with
 * `options.intraOpThreads` of its own. A worker that dies fails its job and every job after it.
 */
export class DenseHeadWorkers {
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: { job: DenseJob; settle: (reply: FromWorker) => void }[] = [];
  private readonly running = new Map<Worker, (reply: FromWorker) => void>();
  /** Why the pool takes no more work: closed, or a worker died. */
  private stopped?: string;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) this.all.push(this.start());
    this.idle.push(...this.all);
  }

  run<J extends DenseJob>(job: J): Promise<DenseJobDone<J>> {
    if (this.stopped) return Promise.reject(new Error(this.stopped));
    return new Promise((resolve, reject) => {
      this.queue.push({
        job,
        settle: (reply) =>
          reply.error === undefined
            ? resolve(reply.done as DenseJobDone<J>)
            : reject(Object.assign(new Error(reply.error), { name: reply.errorName ?? 'Error' })),
      });
      this.dispatch();
    });
  }

  /** Stops every worker; queued and running jobs are rejected. */
  async close(): Promise<void> {
    this.stop('the dense head workers are closed');
    await Promise.all(this.all.map((w) => w.terminate()));
  }

  private stop(reason: string): void {
    this.stopped ??= reason;
    for (const { settle } of this.queue.splice(0)) settle({ error: this.stopped });
  }

  private start(): Worker {
    const data = { medsynDenseHeadWorker: true };
    // From the TypeScript sources (tests, tsx) the worker needs tsx's loader; built, it runs dist/dense-workers.js.
    const worker = __filename.endsWith('.ts')
      ? new Worker(`require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(__filename)});`, {
          eval: true,
          workerData: data,
          execArgv: ['--conditions=medsyn-source'],
        })
      : new Worker(__filename, { workerData: data });
    worker.unref();
    worker.on('message', (reply: FromWorker) => {
      const settle = this.running.get(worker);
      this.running.delete(worker);
      this.idle.push(worker);
      worker.unref();
      settle?.(reply);
      this.dispatch();
    });
    worker.once('exit', (code) => {
      const settle = this.running.get(worker);
      this.running.delete(worker);
      this.stop(`a dense head worker stopped (exit ${code})`);
      settle?.({ error: this.stopped });
    });
    return worker;
  }

  private dispatch(): void {
    while (!this.stopped && this.idle.length && this.queue.length) {
      const worker = this.idle.shift()!;
      const { job, settle } = this.queue.shift()!;
      this.running.set(worker, settle);
      // A busy worker keeps the process alive; an idle one does not.
      worker.ref();
      worker.postMessage({ job } satisfies ToWorker);
    }
  }
}

/** The worker's side: runs each job it is given and answers with its result or error message. */
function serveDenseJobs(): void {
  const port = parentPort!;
  port.on('message', ({ job }: ToWorker) => {
    runDenseJob(job).then(
      (done) => port.postMessage({ done } satisfies FromWorker),
      (error: Error) => port.postMessage({ error: error.message, errorName: error.name } satisfies FromWorker),
    );
  });
}

if (!isMainThread && (workerData as { medsynDenseHeadWorker?: boolean } | null)?.medsynDenseHeadWorker)
  serveDenseJobs();
