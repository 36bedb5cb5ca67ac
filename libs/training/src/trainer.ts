import * as ort from 'onnxruntime-node';
import { cpuQuotaLimit } from './cpu-budget';
import type { ExecutionProvider } from '@medsyn/config';
import { RNG_SEED_INPUT, tensor as makeTensor, type DType, type Tensor, type TypedArray } from '@medsyn/onnx-graph';
import {
  GRAD_NORM_OUTPUT,
  LEARNING_RATE_INPUT,
  LOSS_OUTPUT,
  STEP_INPUT,
  updatedName,
  type TrainingStepGraph,
} from './training-step';

export type { ExecutionProvider };

/** The requested execution provider is not available in this onnxruntime build or on this machine. */
export class ExecutionProviderError extends Error {}

export interface TrainerOptions {
  /** Where the step graph runs (default cpu). */
  executionProvider?: ExecutionProvider;
  /** Threads for one operator (default: onnxruntime's choice, all cores, or the container's CPU limit where lower). */
  intraOpThreads?: number;
  /**
   * Let idle intra-op threads spin for the next operator instead of sleeping (default off: they
   * take the cores JavaScript, the batch worker and the GC need between steps; docs/training.md).
   */
  intraOpSpinning?: boolean;
  /** onnxruntime's CPU memory arena (default on: off, steps are slower and peak memory is no lower). */
  memoryArena?: boolean;
  /** Seed of dropout's random streams: step s of a run draws from hash(seed, s), so a resumed run draws what an uninterrupted one would. */
  seed?: number;
  /** Write onnxruntime's per-node profile of the step session to `<prefix>_<date>.json` (see Trainer.endProfiling). */
  profileFilePrefix?: string;
}

export interface StepResult {
  loss: number;
  /** Global gradient L2 norm before clipping. */
  gradNorm: number;
  metrics: Record<string, number>;
}

/** Everything needed to continue training exactly: parameters, buffers, optimizer state and step. */
export interface TrainerState {
  tensors: Map<string, Tensor>;
  step: number;
}

const toOrt = (t: Tensor) =>
  new ort.Tensor(t.dtype === 'float16' ? 'float16' : (t.dtype as 'float32'), t.data as Float32Array, t.dims);
const fromOrt = (t: ort.Tensor): Tensor => ({ dtype: t.type as DType, dims: [...t.dims], data: t.data as TypedArray });

/** Sessions are created with exactly the requested provider, so a missing one fails loudly instead of falling back. */
export async function createSession(model: Uint8Array, options: TrainerOptions = {}): Promise<ort.InferenceSession> {
  const provider = options.executionProvider ?? 'cpu';
  const supported = ort.listSupportedBackends().map((b) => b.name);
  if (!supported.includes(provider)) {
    throw new ExecutionProviderError(
      `execution provider "${provider}" is not in this onnxruntime-node build (it has: ${supported.join(', ')}); on GPU machines install with ONNXRUNTIME_NODE_INSTALL=cuda12`,
    );
  }
  // onnxruntime sizes its pool by the machine's cores, blind to a container's CPU limit.
  const threads = options.intraOpThreads ?? cpuQuotaLimit();
  try {
    return await ort.InferenceSession.create(model, {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
      enableCpuMemArena: options.memoryArena ?? true,
      // With the arena, the pattern planner's one big block (from the second run on) sits next to
      // the arena's chunks from the first run: peak memory ~1.3x higher for no measurable speed.
      enableMemPattern: false,
      // With spinning threads real runs took 1.2-1.9x as long (the demo's pre-training and the
      // evaluator's segmentation heads); the training benches, which do nothing between steps,
      // ran within 8 % either way.
      extra: { session: { 'intra_op.allow_spinning': options.intraOpSpinning ? '1' : '0' } },
      ...(options.profileFilePrefix ? { enableProfiling: true, profileFilePrefix: options.profileFilePrefix } : {}),
      ...(threads ? { intraOpNumThreads: threads } : {}),
    });
  } catch (error) {
    if (provider === 'cpu') throw error;
    throw new ExecutionProviderError(`execution provider "${provider}" could not start: ${(error as Error).message}`);
  }
}

type Batch = Record<string, ort.Tensor>;

/** What a trainer keeps of its TrainingStepGraph: names and the model, no tensors. */
interface StepLayout {
  model: Uint8Array;
  batchInputs: TrainingStepGraph['batchInputs'];
  updated: readonly string[];
  metrics: readonly string[];
  dtype: DType;
  parameterNames: readonly string[];
  optimizerState: ReadonlySet<string>;
  accumulation?: { microBatches: number; updated: readonly string[]; accumulators: readonly string[] };
}

/**
 * Runs a training-step graph on onnxruntime, keeping parameters, buffers, optimizer state (and
 * gradient accumulators) as onnxruntime tensors between steps: each run feeds them with the
 * batch and takes back their updated values.
 */
export class Trainer {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly applySession: ort.InferenceSession | undefined,
    /** The graph's bookkeeping, without its initial values (which the trainer must not keep alive). */
    private readonly layout: StepLayout,
    private values: Map<string, ort.Tensor>,
    private steps: number,
    private readonly seed: number,
  ) {}

  /** Buffers the next step writes its updated tensors into (see fetches()). */
  private spare = new Map<string, ort.Tensor>();

  /**
   * Names whose current value is still the graph's own initial tensor: read, never written, and not
   * recycled as a spare, so the graph stays reusable and its buffers are freed once the caller drops it.
   */
  private borrowed = new Set<string>();

  /** Which micro-batch of the current step runs (for dropout seeds). */
  private microBatch = 0;

  static async create(graph: TrainingStepGraph, options: TrainerOptions = {}): Promise<Trainer> {
    const session = await createSession(graph.model, options);
    const applySession = graph.accumulation ? await createSession(graph.accumulation.apply, options) : undefined;
    const values = new Map<string, ort.Tensor>();
    // Parameters are borrowed: the first step writes their update into fresh buffers (ResNet-18: one
    // copy of the parameters less at peak). Optimizer state and accumulators are written in place: copies.
    for (const [name, p] of graph.parameters) values.set(name, toOrt(p.initial));
    for (const [name, t] of graph.optimizerState) values.set(name, toOrt(copy(t)));
    for (const [name, t] of graph.accumulation?.accumulators ?? []) values.set(name, toOrt(copy(t)));
    const { model, batchInputs, updated, metrics, accumulation } = graph;
    const layout: StepLayout = {
      model,
      batchInputs,
      updated,
      metrics,
      dtype: graph.parameters.values().next().value!.initial.dtype,
      parameterNames: [...graph.parameters.keys()],
      optimizerState: new Set(graph.optimizerState.keys()),
      ...(accumulation && {
        accumulation: {
          microBatches: accumulation.microBatches,
          updated: accumulation.updated,
          accumulators: [...accumulation.accumulators.keys()],
        },
      }),
    };
    const trainer = new Trainer(session, applySession, layout, values, 0, options.seed ?? 0);
    for (const name of graph.parameters.keys()) trainer.borrowed.add(name);
    return trainer;
  }

  /** The serialised step graph this trainer runs. */
  get model(): Uint8Array {
    return this.layout.model;
  }

  /** Optimizer steps done so far. */
  get step(): number {
    return this.steps;
  }

  /**
   * One optimizer step: on one batch, or with gradient accumulation on exactly as many
   * micro-batches as the graph was built for (their mean loss and metrics are returned).
   */
  async trainStep(batches: Batch | Batch[], learningRate: number): Promise<StepResult> {
    const micro = Array.isArray(batches) ? batches : [batches];
    const expected = this.layout.accumulation?.microBatches ?? 1;
    if (micro.length !== expected) throw new Error(`this step takes ${expected} micro-batch(es), got ${micro.length}`);
    const scalars = (out: ort.InferenceSession.OnnxValueMapType, name: string) => Number(out[name]!.data[0]);
    let loss = 0;
    const metrics: Record<string, number> = Object.fromEntries(this.layout.metrics.map((m) => [m, 0]));
    let gradNorm = NaN;
    for (const [index, batch] of micro.entries()) {
      this.microBatch = index;
      for (const input of this.layout.batchInputs)
        if (!batch[input.name]) throw new Error(`batch lacks input "${input.name}"`);
      const out = await this.session.run(
        this.feeds(this.session, batch, learningRate),
        this.fetches(this.session, this.layout.updated),
      );
      this.swap(this.layout.updated);
      loss += scalars(out, LOSS_OUTPUT) / micro.length;
      for (const m of this.layout.metrics) metrics[m]! += scalars(out, m) / micro.length;
      if (!this.applySession) gradNorm = scalars(out, GRAD_NORM_OUTPUT);
    }
    if (this.applySession && this.layout.accumulation) {
      const out = await this.applySession.run(
        this.feeds(this.applySession, {}, learningRate),
        this.fetches(this.applySession, this.layout.accumulation.updated),
      );
      this.swap(this.layout.accumulation.updated);
      for (const name of this.layout.accumulation.accumulators) (this.values.get(name)!.data as Float32Array).fill(0);
      gradNorm = scalars(out, GRAD_NORM_OUTPUT);
    }
    this.steps++;
    return { loss, gradNorm, metrics };
  }

  /** Current parameters and buffers (copies). */
  parameters(): Map<string, Tensor> {
    return new Map(this.layout.parameterNames.map((name) => [name, copy(fromOrt(this.values.get(name)!))]));
  }

  /** A snapshot for checkpoints: every tensor the step reads and updates, and the step count. */
  state(): TrainerState {
    return { tensors: new Map([...this.values].map(([name, t]) => [name, copy(fromOrt(t))])), step: this.steps };
  }

  /** Continues from a snapshot; every tensor must match the graph's names, types and shapes. */
  load(state: TrainerState): void {
    for (const [name, current] of this.values) {
      const t = state.tensors.get(name);
      if (!t) throw new Error(`checkpoint lacks ${name}`);
      if (t.dtype !== current.type || t.dims.join(',') !== current.dims.join(',')) {
        throw new Error(
          `checkpoint ${name} is ${t.dtype}[${t.dims}], the model expects ${current.type}[${current.dims}]`,
        );
      }
    }
    this.values = new Map([...this.values.keys()].map((name) => [name, toOrt(copy(state.tensors.get(name)!))]));
    this.borrowed.clear();
    this.steps = state.step;
  }

  /** Stops profiling (TrainerOptions.profileFilePrefix) and writes the profile file. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
    await this.applySession?.release();
  }

  /**
   * Updated tensors are written into preallocated spare buffers (the runtime fills fetches in
   * place), then spare and current swap roles. Memory stays at two copies of the training
   * state instead of a fresh copy per step that only the garbage collector would reclaim.
   */
  private fetches(session: ort.InferenceSession, updated: readonly string[]): ort.InferenceSession.FetchesType {
    const fetches: Record<string, ort.Tensor | null> = Object.fromEntries(
      session.outputNames.map((name) => [name, null]),
    );
    for (const name of updated) {
      if (this.inPlace(name)) {
        fetches[updatedName(name)] = this.values.get(name)!;
        continue;
      }
      let spare = this.spare.get(name);
      if (!spare) {
        const current = this.values.get(name)!;
        spare = new ort.Tensor(
          current.type as 'float32',
          new (current.data.constructor as Float32ArrayConstructor)(current.size),
          current.dims,
        );
        this.spare.set(name, spare);
      }
      fetches[updatedName(name)] = spare;
    }
    return fetches as ort.InferenceSession.FetchesType;
  }

  /**
   * Optimizer state is updated in place: each slot is read by one node only (Adam's moments, SGD's
   * momentum: state * beta), which every write of its new value depends on, so writing the output
   * into the input's buffer cannot overtake a read (ResNet-18: 94 MB less at peak). Parameters and
   * buffers are read by several nodes and keep their spare buffers.
   */
  private inPlace(name: string): boolean {
    return this.layout.optimizerState.has(name);
  }

  private swap(updated: readonly string[]): void {
    for (const name of updated) {
      if (this.inPlace(name)) continue;
      const next = this.spare.get(name)!;
      if (this.borrowed.delete(name)) this.spare.delete(name);
      else this.spare.set(name, this.values.get(name)!);
      this.values.set(name, next);
    }
  }

  /** Feeds for exactly the session's inputs: batch, held tensors, learning rate and step. */
  private feeds(session: ort.InferenceSession, batch: Batch, learningRate: number): Batch {
    const dtype = this.layout.dtype;
    const scalar = (v: number) =>
      new ort.Tensor(dtype as 'float32', dtype === 'float64' ? Float64Array.of(v) : Float32Array.of(v), []);
    const feeds: Batch = {};
    for (const name of session.inputNames) {
      if (name === LEARNING_RATE_INPUT) feeds[name] = scalar(learningRate);
      else if (name === STEP_INPUT) feeds[name] = scalar(this.steps + 1);
      else if (name === RNG_SEED_INPUT)
        feeds[name] = new ort.Tensor(
          'int64',
          BigInt64Array.of(BigInt(stepSeed(this.seed, this.steps, this.microBatch))),
          [],
        );
      else feeds[name] = batch[name] ?? this.values.get(name) ?? fail(`no value for graph input ${name}`);
    }
    return feeds;
  }
}

function fail(message: string): never {
  throw new Error(message);
}

/** A well-mixed 31-bit seed for (run seed, step, micro-batch), from murmur3's 32-bit finaliser. */
function stepSeed(seed: number, step: number, microBatch: number): number {
  let h = (seed ^ Math.imul(step + 1, 0x9e3779b1) ^ Math.imul(microBatch + 1, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 1;
}

function copy(t: Tensor): Tensor {
  return makeTensor(t.dtype, t.dims, t.data.slice() as never);
}
