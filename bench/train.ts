// npm run bench:train — training throughput and peak memory of medsyn's engine (onnxruntime-node,
// CPU, 2 threads) against PyTorch 1.13 eager (Debian) on the same models, batches and AdamW step,
// both measured in this run; plus achieved GFLOP/s against onnxruntime's own MatMul ceiling.
// Each side runs in its own process so that peak RSS is its own. Last line: RESULT {json}.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, ops, type Value } from '@medsyn/onnx-graph';
import { bert, modelBuilder, resnet, vit } from '@medsyn/model-zoo';
import { Trainer, buildTrainingStep } from '@medsyn/training';
import { watchLoad } from './machine';

const THREADS = 2;

interface BenchModel {
  name: string;
  batch: number;
  inputs: Record<string, { dtype: 'float32' | 'int64'; shape: number[] }>;
  classes: number;
  logits: (g: GraphBuilder, x: Record<string, Value>, training: boolean) => Value;
  /** What train_peer.py needs to build the same model. */
  peer: Record<string, unknown>;
  steps: number;
  /** Throughput ratio the issue asks for. */
  target: number;
}

const MODELS: BenchModel[] = [
  {
    name: 'resnet18_128px_b16',
    batch: 16,
    inputs: { x: { dtype: 'float32', shape: [3, 128, 128] } },
    classes: 10,
    logits: (g, { x }, training) => resnet(modelBuilder(g, { training }), x!, { depth: 18, classes: 10 }).logits!,
    peer: { meta: { model: 'resnet', depth: 18, width: 64, in_channels: 3, classes: 10 }, size: 128 },
    steps: 6,
    target: 0.6,
  },
  {
    name: 'vit_tiny_224px_b16',
    batch: 16,
    inputs: { x: { dtype: 'float32', shape: [3, 224, 224] } },
    classes: 10,
    logits: (g, { x }, training) => vit(modelBuilder(g, { training }), x!, { imageSize: 224, patchSize: 16, layers: 12, heads: 3, hidden: 192, mlpDim: 768, classes: 10 }).logits!,
    peer: { meta: { model: 'vit', image_size: 224, patch_size: 16, layers: 12, heads: 3, hidden: 192, mlp_dim: 768, classes: 10 }, size: 224 },
    steps: 4,
    target: 0.8,
  },
  {
    name: 'bert_tiny_128tok_b32',
    batch: 32,
    inputs: { input_ids: { dtype: 'int64', shape: [128] }, attention_mask: { dtype: 'int64', shape: [128] } },
    classes: 10,
    logits: (g, { input_ids, attention_mask }, training) =>
      bert(modelBuilder(g, { training }), input_ids!, attention_mask!, { vocabSize: 8000, hidden: 128, layers: 4, heads: 4, intermediate: 512, maxLength: 128, maxPositions: 512, classes: 10 }).logits!,
    peer: { meta: { model: 'bert', vocab: 8000, hidden: 128, layers: 4, heads: 4, intermediate: 512, positions: 512, classes: 10 }, tokens: 128 },
    steps: 10,
    target: 0.8,
  },
];

/** Multiply-adds x 2 of the MatMul, Gemm and Conv nodes of a forward graph with static shapes. */
function forwardFlops(g: GraphBuilder): number {
  const numel = (v: Value) => (v.shape as number[]).reduce((a, b) => a * b, 1);
  let flops = 0;
  for (const node of g.nodes) {
    const input = (i: number) => g.value(node.inputs[i]!);
    const out = g.value(node.outputs[0]!);
    if (node.op === 'MatMul') flops += 2 * numel(out) * (input(0).shape.at(-1) as number);
    else if (node.op === 'Gemm') flops += 2 * numel(out) * (input(1).shape[node.attrs.transB?.value ? 1 : 0] as number);
    else if (node.op === 'Conv') {
      const w = input(1).shape as number[];
      flops += 2 * numel(out) * w[1]! * w[2]! * w[3]!;
    }
  }
  return flops;
}

function randomFeeds(m: BenchModel): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, spec] of Object.entries(m.inputs)) {
    const n = m.batch * spec.shape.reduce((a, b) => a * b, 1);
    feeds[name] =
      spec.dtype === 'int64'
        ? new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => (name === 'attention_mask' ? 1n : BigInt(1 + ((i * 7919) % 7999)))), [m.batch, ...spec.shape])
        : new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => Math.sin(i)), [m.batch, ...spec.shape]);
  }
  const y = new Float32Array(m.batch * m.classes);
  for (let i = 0; i < m.batch; i++) y[i * m.classes + (i % m.classes)] = 1;
  feeds.y = new ort.Tensor('float32', y, [m.batch, m.classes]);
  return feeds;
}

/** Child process: times our training steps for one model. */
async function runOurs(m: BenchModel): Promise<void> {
  const step = buildTrainingStep({
    optimizer: { kind: 'adamw', weightDecay: 0.05 },
    build: (g) => {
      const o = ops(g);
      const x = Object.fromEntries(Object.entries(m.inputs).map(([name, spec]) => [name, g.input(name, spec.dtype, [m.batch, ...spec.shape])]));
      const target = g.input('y', 'float32', [m.batch, m.classes]);
      return { loss: o.neg(o.reduceMean(o.reduceSum(o.mul(o.logSoftmax(m.logits(g, x, true), -1), target), [1], false), [0], false)) };
    },
  });
  const trainer = await Trainer.create(step, { intraOpThreads: THREADS });
  const feeds = randomFeeds(m);
  for (let i = 0; i < 2; i++) await trainer.trainStep(feeds, 1e-4);
  const start = process.hrtime.bigint();
  for (let i = 0; i < m.steps; i++) await trainer.trainStep(feeds, 1e-4);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const forward = new GraphBuilder('flops');
  m.logits(forward, Object.fromEntries(Object.entries(m.inputs).map(([name, spec]) => [name, forward.input(name, spec.dtype, [m.batch, ...spec.shape])])), true);
  console.log(JSON.stringify({ stepsPerSecond: m.steps / seconds, peakRssMiB: process.resourceUsage().maxRSS / 1024, trainingFlops: 3 * forwardFlops(forward) }));
}

/** Child process: onnxruntime's MatMul ceiling on this machine (1024 x 1024, float32). */
async function runMatmulCeiling(): Promise<void> {
  const g = new GraphBuilder('matmul');
  const o = ops(g);
  g.output(o.matmul(g.input('a', 'float32', [1024, 1024]), g.input('b', 'float32', [1024, 1024])), 'c');
  const { encodeModel } = await import('@medsyn/onnx-graph');
  const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()), { intraOpNumThreads: THREADS });
  const a = new ort.Tensor('float32', Float32Array.from({ length: 1 << 20 }, (_, i) => Math.sin(i)), [1024, 1024]);
  for (let i = 0; i < 3; i++) await session.run({ a, b: a });
  const runs = 20;
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) await session.run({ a, b: a });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ gflops: (runs * 2 * 1024 ** 3) / seconds / 1e9 }));
}

function child(args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, [...process.execArgv, __filename, ...args], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!);
}

function peer(m: BenchModel): Record<string, number> {
  const config = { ...m.peer, batch: m.batch, steps: m.steps, warmup: 2, threads: THREADS };
  const out = execFileSync('/usr/bin/python3', [path.join(__dirname, 'python', 'train_peer.py'), JSON.stringify(config)], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!);
}

async function main() {
  const [mode, name] = process.argv.slice(2);
  if (mode === '--ours') return runOurs(MODELS.find((m) => m.name === name)!);
  if (mode === '--matmul') return runMatmulCeiling();
  const load = watchLoad(THREADS);

  const only = process.env.BENCH_MODELS?.split(',');
  const ceiling = child(['--matmul']).gflops!;
  console.log(`onnxruntime MatMul 1024x1024 ceiling: ${ceiling.toFixed(1)} GFLOP/s (${THREADS} threads)`);
  const results: Record<string, unknown>[] = [];
  for (const m of MODELS.filter((m) => !only || only.includes(m.name))) {
    const ours = child(['--ours', m.name]);
    const torch = peer(m);
    const result = {
      model: m.name,
      ours_steps_per_s: round(ours.stepsPerSecond!),
      torch_steps_per_s: round(torch.stepsPerSecond!),
      throughput_ratio: round(ours.stepsPerSecond! / torch.stepsPerSecond!),
      target_ratio: m.target,
      ours_peak_rss_mib: Math.round(ours.peakRssMiB!),
      torch_peak_rss_mib: Math.round(torch.peakRssMiB!),
      memory_ratio: round(ours.peakRssMiB! / torch.peakRssMiB!),
      ours_gflops: round((ours.trainingFlops! * ours.stepsPerSecond!) / 1e9),
      fraction_of_matmul_ceiling: round((ours.trainingFlops! * ours.stepsPerSecond!) / 1e9 / ceiling),
    };
    results.push(result);
    console.log(
      `${m.name}: ours ${result.ours_steps_per_s} steps/s, PyTorch ${result.torch_steps_per_s} -> ratio ${result.throughput_ratio} (target >= ${m.target}); ` +
        `peak RSS ${result.ours_peak_rss_mib} vs ${result.torch_peak_rss_mib} MiB -> ${result.memory_ratio}; ${result.ours_gflops} GFLOP/s = ${result.fraction_of_matmul_ceiling} of the MatMul ceiling`,
    );
  }
  console.log(`RESULT ${JSON.stringify({ matmul_ceiling_gflops: round(ceiling), models: results, ...load.report() })}`);
}

const round = (x: number) => Math.round(x * 1000) / 1000;

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
