import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ArtifactNotFoundError, FileArtifactStore, getBuffer, type ArtifactStore } from '@medsyn/artifact-store';
import { ImageBatcher, type DataPosition, type ImageBatch, type ImageBatcherOptions } from './batches';

/** What the worker needs to fill the same batches as an ImageBatcher on the training thread. */
export interface ImageBatchWorkerSetup extends Omit<ImageBatcherOptions, 'read'> {
  store: ArtifactStore;
  start: DataPosition;
  /** Batches the worker fills ahead of the trainer, at most. */
  depth: number;
}

interface WorkerSetup extends Omit<ImageBatchWorkerSetup, 'store'> {
  /** A local store's root, which the worker reads itself; otherwise it asks the training thread for each image. */
  storeRoot?: string;
  /**
   * Set to 1 by close(). Shared memory, not a message: with its images cached a batch load never
   * yields to the worker's event loop, so a message would wait for the whole batch.
   */
  stop: Int32Array;
}

type ToWorker =
  { credit: true } | { close: true } | { read: number; bytes?: Uint8Array; missing?: string; error?: string };
type FromWorker = { batch: ImageBatch } | { failed: string } | { read: number; key: string };

let live = 0;

/** Batch worker threads started and not yet exited, in this process. */
export function liveImageBatchWorkers(): number {
  return live;
}

/** How long close() lets a worker finish the image it is on before terminating it. */
const CLOSE_GRACE_MS = 2000;

/**
 * One worker thread that fills image batches ahead of the trainer, in order from `start`, at most
 * `depth` batches ahead (each one taken gives the worker room for one more). onnxruntime-node's
 * session.run holds the training thread for the whole step, so decoding on that thread adds to
 * every step; here it runs on another core while the step computes. A local store is read in the
 * worker; any other store is read by the training thread on the worker's request (the reads then
 * wait for the gaps between steps; decoding and augmentation still run in the worker).
 */
export class ImageBatchWorker {
  private readonly worker: Worker;
  private readonly ready: ImageBatch[] = [];
  private waiting?: { resolve: (batch: ImageBatch) => void; reject: (error: Error) => void };
  private failure?: Error;
  private readonly exited: Promise<void>;
  private closing?: Promise<void>;
  private readonly stop = new Int32Array(new SharedArrayBuffer(4));
  /** Awaits that need the worker's answer; while there is one the worker keeps the process alive. */
  private holds = 0;

  constructor(setup: ImageBatchWorkerSetup) {
    const { store, ...rest } = setup;
    const data: WorkerSetup = {
      ...rest,
      // The worker needs no report text: leave it out of the copy.
      train: rest.train.map((r) => ({ ...r, report: '' })),
      stop: this.stop,
      ...(store instanceof FileArtifactStore ? { storeRoot: store.root } : {}),
    };
    const workerData = { medsynImageBatchWorker: data };
    // From the TypeScript sources (tests, tsx) the worker needs tsx's loader; built, it runs dist/batch-worker.js.
    this.worker = __filename.endsWith('.ts')
      ? new Worker(`require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(__filename)});`, {
          eval: true,
          workerData,
          execArgv: ['--conditions=medsyn-source'],
        })
      : new Worker(__filename, { workerData });
    live++;
    this.worker.unref();
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', (code) => {
        live--;
        this.fail(new Error(`the batch worker stopped (exit ${code})`));
        resolve();
      }),
    );
    this.worker.on('error', (error) => this.fail(new Error(`the batch worker failed: ${error.message}`)));
    this.worker.on('message', (message: FromWorker) => {
      if ('batch' in message) {
        if (this.waiting) {
          this.waiting.resolve(message.batch);
          this.waiting = undefined;
          this.worker.postMessage({ credit: true } satisfies ToWorker);
        } else this.ready.push(message.batch);
      } else if ('failed' in message) this.fail(new Error(message.failed));
      else void this.serveRead(store, message.read, message.key);
    });
  }

  /** Batches filled and not yet taken. */
  get buffered(): number {
    return this.ready.length;
  }

  /** The next batch in order; the worker starts filling the one after the last it may hold. */
  async next(): Promise<ImageBatch> {
    const batch = this.ready.shift();
    if (batch) {
      this.worker.postMessage({ credit: true } satisfies ToWorker);
      return batch;
    }
    if (this.failure) throw this.failure;
    if (this.closing) throw new Error('the batch worker is closed');
    return this.hold(new Promise<ImageBatch>((resolve, reject) => (this.waiting = { resolve, reject })));
  }

  /** Stops the worker: it finishes the image it is on (or is terminated after a grace period) and exits. */
  close(): Promise<void> {
    this.closing ??= this.hold(
      (async () => {
        Atomics.store(this.stop, 0, 1);
        // The message wakes a worker that waits for credit.
        this.worker.postMessage({ close: true } satisfies ToWorker);
        if (!(await this.exitsWithin(CLOSE_GRACE_MS))) {
          void this.worker.terminate();
          // A thread stuck in native code may not end even then; unreferenced, it cannot hold the process.
          await this.exitsWithin(CLOSE_GRACE_MS);
        }
        this.ready.length = 0;
      })(),
    );
    return this.closing;
  }

  private async exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const exited = await Promise.race([this.exited.then(() => true), late]);
    clearTimeout(timer);
    return exited;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.waiting?.reject(this.failure);
    this.waiting = undefined;
  }

  private async hold<T>(work: Promise<T>): Promise<T> {
    if (this.holds++ === 0) this.worker.ref();
    try {
      return await work;
    } finally {
      if (--this.holds === 0) this.worker.unref();
    }
  }

  private async serveRead(store: ArtifactStore, id: number, key: string): Promise<void> {
    let reply: ToWorker;
    try {
      reply = { read: id, bytes: await getBuffer(store, key) };
    } catch (error) {
      reply =
        error instanceof ArtifactNotFoundError
          ? { read: id, missing: key }
          : { read: id, error: (error as Error).message };
    }
    if (!this.closing) this.worker.postMessage(reply);
  }
}

/** The worker's side: fills batches while it holds credit, until told to close. */
function serveImageBatches(setup: WorkerSetup): void {
  const port = parentPort!;
  const pendingReads = new Map<number, { resolve: (bytes: Uint8Array) => void; reject: (error: Error) => void }>();
  let readId = 0;
  const store = setup.storeRoot ? new FileArtifactStore(setup.storeRoot) : undefined;
  const read = store
    ? (key: string) => getBuffer(store, key)
    : (key: string) =>
        new Promise<Uint8Array>((resolve, reject) => {
          pendingReads.set(++readId, { resolve, reject });
          port.postMessage({ read: readId, key } satisfies FromWorker);
        });
  const batcher = new ImageBatcher({ ...setup, read });
  let position = setup.start;
  let credit = setup.depth;
  let closing = false;
  let filling = false;
  const stopped = () => Atomics.load(setup.stop, 0) === 1;
  const fill = async () => {
    if (filling) return;
    filling = true;
    try {
      while (credit > 0 && !closing && !stopped()) {
        const batch = await batcher.load(position, stopped);
        credit--;
        position = batch.next;
        port.postMessage({ batch } satisfies FromWorker, [batch.pixels.buffer as ArrayBuffer]);
      }
    } catch (error) {
      if (!stopped()) port.postMessage({ failed: (error as Error).message } satisfies FromWorker);
      closing = true;
    } finally {
      filling = false;
      // With the port closed and no read in flight the thread has nothing left and exits.
      if (closing || stopped()) port.close();
    }
  };
  port.on('message', (message: ToWorker) => {
    if ('credit' in message) {
      credit++;
      void fill();
    } else if ('close' in message) {
      closing = true;
      for (const { reject } of pendingReads.values()) reject(new Error('closing'));
      if (!filling) port.close();
    } else {
      const waiting = pendingReads.get(message.read);
      pendingReads.delete(message.read);
      if (message.bytes) waiting?.resolve(message.bytes);
      else
        waiting?.reject(
          message.missing !== undefined ? new ArtifactNotFoundError(message.missing) : new Error(message.error),
        );
    }
  });
  void fill();
}

if (!isMainThread && (workerData as { medsynImageBatchWorker?: WorkerSetup } | null)?.medsynImageBatchWorker) {
  serveImageBatches((workerData as { medsynImageBatchWorker: WorkerSetup }).medsynImageBatchWorker);
}
