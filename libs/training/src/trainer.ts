import * as ort from 'onnxruntime-node';
import { tensor as makeTensor, type DType, type Tensor, type TypedArray } from '@medsyn/onnx-graph';
import { GRAD_NORM_OUTPUT, LEARNING_RATE_INPUT, LOSS_OUTPUT, STEP_INPUT, updatedName, type TrainingStepGraph } from './training-step';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';

/** The requested execution provider is not available in this onnxruntime build or on this machine. */
export class ExecutionProviderError extends Error {}

export interface TrainerOptions {
  /** Where the step graph runs (default cpu). */
  executionProvider?: ExecutionProvider;
  /** Threads for one operator (default: onnxruntime's choice, all cores). */
  intraOpThreads?: number;
  /**
   * onnxruntime's CPU memory arena (default on). Off, peak memory falls by a quarter to a third
   * and steps slow by 10-20 % (measured with npm run bench:train).
   */
  memoryArena?: boolean;
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

const toOrt = (t: Tensor) => new ort.Tensor(t.dtype === 'float16' ? 'float16' : (t.dtype as 'float32'), t.data as Float32Array, t.dims);
const fromOrt = (t: ort.Tensor): Tensor => ({ dtype: t.type as DType, dims: [...t.dims], data: t.data as TypedArray });

/** Sessions are created with exactly the requested provider, so a missing one fails loudly instead of falling back. */
export async function createSession(model: Uint8Array, options: TrainerOptions = {}): Promise<ort.InferenceSession> {
  const provider = options.executionProvider ?? 'cpu';
  const supported = ort.listSupportedBackends().map((b) => b.name);
  if (!supported.includes(provider)) {
    throw new ExecutionProviderError(`execution provider "${provider}" is not in this onnxruntime-node build (it has: ${supported.join(', ')}); on GPU machines install with ONNXRUNTIME_NODE_INSTALL=cuda12`);
  }
  try {
    return await ort.InferenceSession.create(model, {
      executionProviders: [provider],
      graphOptimizationLevel: 'all',
      enableCpuMemArena: options.memoryArena ?? true,
      ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    });
  } catch (error) {
    if (provider === 'cpu') throw error;
    throw new ExecutionProviderError(`execution provider "${provider}" could not start: ${(error as Error).message}`);
  }
}

/**
 * Runs a training-step graph on onnxruntime, keeping parameters, buffers and optimizer state as
 * onnxruntime tensors between steps: each step feeds them with the batch and takes back their
 * updated values.
 */
export class Trainer {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly graph: TrainingStepGraph,
    private values: Map<string, ort.Tensor>,
    private steps: number,
  ) {}

  static async create(graph: TrainingStepGraph, options: TrainerOptions = {}): Promise<Trainer> {
    const session = await createSession(graph.model, options);
    const values = new Map<string, ort.Tensor>();
    for (const [name, p] of graph.parameters) values.set(name, toOrt(p.initial));
    for (const [name, t] of graph.optimizerState) values.set(name, toOrt(t));
    return new Trainer(session, graph, values, 0);
  }

  /** Steps done so far. */
  get step(): number {
    return this.steps;
  }

  async trainStep(batch: Record<string, ort.Tensor>, learningRate: number): Promise<StepResult> {
    for (const input of this.graph.batchInputs) if (!batch[input.name]) throw new Error(`batch lacks input "${input.name}"`);
    const dtype = this.graph.parameters.values().next().value!.initial.dtype as 'float32';
    const feeds: Record<string, ort.Tensor> = {
      ...batch,
      ...Object.fromEntries(this.values),
      [LEARNING_RATE_INPUT]: new ort.Tensor(dtype, dtype === 'float32' ? Float32Array.of(learningRate) : Float64Array.of(learningRate), []),
      [STEP_INPUT]: new ort.Tensor(dtype, dtype === 'float32' ? Float32Array.of(this.steps + 1) : Float64Array.of(this.steps + 1), []),
    };
    const out = await this.session.run(feeds);
    for (const name of this.graph.updated) this.values.set(name, out[updatedName(name)]!);
    this.steps++;
    const scalar = (name: string) => Number(out[name]!.data[0]);
    return { loss: scalar(LOSS_OUTPUT), gradNorm: scalar(GRAD_NORM_OUTPUT), metrics: Object.fromEntries(this.graph.metrics.map((m) => [m, scalar(m)])) };
  }

  /** Current parameters and buffers (copies). */
  parameters(): Map<string, Tensor> {
    return new Map([...this.graph.parameters.keys()].map((name) => [name, copy(fromOrt(this.values.get(name)!))]));
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
        throw new Error(`checkpoint ${name} is ${t.dtype}[${t.dims}], the model expects ${current.type}[${current.dims}]`);
      }
    }
    this.values = new Map([...this.values.keys()].map((name) => [name, toOrt(copy(state.tensors.get(name)!))]));
    this.steps = state.step;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function copy(t: Tensor): Tensor {
  return makeTensor(t.dtype, t.dims, t.data.slice() as never);
}
