// npm run bench:train — training throughput and peak memory of medsyn's engine (onnxruntime-node,
// CPU, 2 threads) against PyTorch 1.13 eager (Debian) on the same models, batches and AdamW step,
// both measured in this run; plus achieved GFLOP/s against onnxruntime's own MatMul ceiling.
// `--peer-python PATH` (or BENCH_PEER_PYTHON) runs the peer under another interpreter, e.g. a
// current PyTorch; the RESULT names the peer's torch version.
// Each side runs in its own process so that peak RSS is its own; ours and PyTorch alternate
// (ABAB, --repeats pairs per model) and the medians are compared. Last line: RESULT {json}.
//
//   npm run bench:train -- [--threads 1,2] [--repeats 3] [--models resnet,vit] [--baseline DIR]
//   npm run bench:train -- --profile resnet [--threads 2] [--steps 6]   # onnxruntime per-op profile of a step
//
// --threads with several counts prints a scaling curve (ours and PyTorch per count). --baseline
// also times our side as built by another checkout (e.g. a git worktree of an older commit, with
// node_modules linked), interleaved with the other two, to compare graphs in the same conditions.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, ops, type Value } from '@medsyn/onnx-graph';
import { bert, modelBuilder, resnet, vit } from '@medsyn/model-zoo';
import { Trainer, buildTrainingStep } from '@medsyn/training';
import { median, runPythonPeer, watchLoad } from './machine';
import { profileTable, summariseProfile } from './ort-profile';

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
    target: 0.9,
  },
  {
    name: 'vit_tiny_224px_b16',
    batch: 16,
    inputs: { x: { dtype: 'float32', shape: [3, 224, 224] } },
    classes: 10,
    logits: (g, { x }, training) =>
      vit(modelBuilder(g, { training }), x!, {
        imageSize: 224,
        patchSize: 16,
        layers: 12,
        heads: 3,
        hidden: 192,
        mlpDim: 768,
        classes: 10,
      }).logits!,
    peer: {
      meta: {
        model: 'vit',
        image_size: 224,
        patch_size: 16,
        layers: 12,
        heads: 3,
        hidden: 192,
        mlp_dim: 768,
        classes: 10,
      },
      size: 224,
    },
    steps: 4,
    target: 1.0,
  },
  {
    name: 'bert_tiny_128tok_b32',
    batch: 32,
    inputs: { input_ids: { dtype: 'int64', shape: [128] }, attention_mask: { dtype: 'int64', shape: [128] } },
    classes: 10,
    logits: (g, { input_ids, attention_mask }, training) =>
      bert(modelBuilder(g, { training }), input_ids!, attention_mask!, {
        vocabSize: 8000,
        hidden: 128,
        layers: 4,
        heads: 4,
        intermediate: 512,
        maxLength: 128,
        maxPositions: 512,
        classes: 10,
      }).logits!,
    peer: {
      meta: {
        model: 'bert',
        vocab: 8000,
        hidden: 128,
        layers: 4,
        heads: 4,
        intermediate: 512,
        positions: 512,
        classes: 10,
      },
      tokens: 128,
    },
    steps: 10,
    target: 1.0,
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
        ? new ort.Tensor(
            'int64',
            BigInt64Array.from({ length: n }, (_, i) =>
              name === 'attention_mask' ? 1n : BigInt(1 + ((i * 7919) % 7999)),
            ),
            [m.batch, ...spec.shape],
          )
        : new ort.Tensor(
            'float32',
            Float32Array.from({ length: n }, (_, i) => Math.sin(i)),
            [m.batch, ...spec.shape],
          );
  }
  const y = new Float32Array(m.batch * m.classes);
  for (let i = 0; i < m.batch; i++) y[i * m.classes + (i % m.classes)] = 1;
  feeds.y = new ort.Tensor('float32', y, [m.batch, m.classes]);
  return feeds;
}

function buildStep(m: BenchModel) {
  return buildTrainingStep({
    optimizer: { kind: 'adamw', weightDecay: 0.05 },
    build: (g) => {
      const o = ops(g);
      const x = Object.fromEntries(
        Object.entries(m.inputs).map(([name, spec]) => [name, g.input(name, spec.dtype, [m.batch, ...spec.shape])]),
      );
      const target = g.input('y', 'float32', [m.batch, m.classes]);
      return {
        loss: o.neg(
          o.reduceMean(o.reduceSum(o.mul(o.logSoftmax(m.logits(g, x, true), -1), target), [1], false), [0], false),
        ),
      };
    },
  });
}

/** Child process: times our training steps for one model. */
async function runOurs(m: BenchModel, threads: number): Promise<void> {
  const trainer = await Trainer.create(buildStep(m), { intraOpThreads: threads });
  const feeds = randomFeeds(m);
  for (let i = 0; i < 2; i++) await trainer.trainStep(feeds, 1e-4);
  const start = process.hrtime.bigint();
  for (let i = 0; i < m.steps; i++) await trainer.trainStep(feeds, 1e-4);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const forward = new GraphBuilder('flops');
  m.logits(
    forward,
    Object.fromEntries(
      Object.entries(m.inputs).map(([name, spec]) => [name, forward.input(name, spec.dtype, [m.batch, ...spec.shape])]),
    ),
    true,
  );
  console.log(
    JSON.stringify({
      stepsPerSecond: m.steps / seconds,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      trainingFlops: 3 * forwardFlops(forward),
    }),
  );
}

/** Child process: onnxruntime's MatMul ceiling on this machine (1024 x 1024, float32). */
async function runMatmulCeiling(threads: number): Promise<void> {
  const g = new GraphBuilder('matmul');
  const o = ops(g);
  g.output(o.matmul(g.input('a', 'float32', [1024, 1024]), g.input('b', 'float32', [1024, 1024])), 'c');
  const { encodeModel } = await import('@medsyn/onnx-graph');
  const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()), { intraOpNumThreads: threads });
  const a = new ort.Tensor(
    'float32',
    Float32Array.from({ length: 1 << 20 }, (_, i) => Math.sin(i)),
    [1024, 1024],
  );
  for (let i = 0; i < 3; i++) await session.run({ a, b: a });
  const runs = 20;
  const start = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) await session.run({ a, b: a });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(JSON.stringify({ gflops: (runs * 2 * 1024 ** 3) / seconds / 1e9 }));
}

/** Child process: onnxruntime's profile of `steps` training steps after 2 warm-up steps, per op type and node. */
async function runProfile(m: BenchModel, threads: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'train-profile-'));
  const trainer = await Trainer.create(buildStep(m), {
    intraOpThreads: threads,
    profileFilePrefix: path.join(dir, m.name),
  });
  const feeds = randomFeeds(m);
  const warmup = 2;
  for (let i = 0; i < warmup; i++) await trainer.trainStep(feeds, 1e-4);
  const start = process.hrtime.bigint();
  const steps = Number(option('steps') ?? m.steps);
  for (let i = 0; i < steps; i++) await trainer.trainStep(feeds, 1e-4);
  const wall = Number(process.hrtime.bigint() - start) / 1e6 / steps;
  trainer.endProfiling();
  const file = path.join(
    dir,
    fs.readdirSync(dir).find((f) => f.endsWith('.json'))!,
  );
  const p = summariseProfile(file, warmup);
  console.log(
    `${m.name}, ${threads} thread(s): ${wall.toFixed(0)} ms per step (profiled), kernels ${(p.totalMicros / 1000).toFixed(0)} ms per step over ${p.runs} steps (fastest per node: ${(p.totalFloorMicros / 1000).toFixed(0)} ms); profile ${file}\n`,
  );
  console.log(profileTable('phase', p.byPhase, 5) + '\n');
  console.log(profileTable('op type', p.byOp, 15) + '\n');
  console.log(profileTable('phase, op type', p.byPhaseOp, 20) + '\n');
  console.log(profileTable('backward: gradient of <- op type', p.byGradientOf, 20) + '\n');
  console.log(profileTable('node', p.byNode, 25));
}

function child(args: string[], from = path.join(__dirname, '..')): Record<string, number> {
  const out = execFileSync(process.execPath, [...process.execArgv, path.join(from, 'bench', 'train.ts'), ...args], {
    cwd: from,
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

/**
 * The interpreter the PyTorch peer runs in: Debian's python3 (PyTorch 1.13) by default; a newer
 * PyTorch through `--peer-python` or BENCH_PEER_PYTHON (e.g. a venv with a current torch wheel).
 */
const PEER_PYTHON = option('peer-python') ?? process.env.BENCH_PEER_PYTHON ?? '/usr/bin/python3';

function peer(m: BenchModel, threads: number): { stepsPerSecond: number; peakRssMiB: number; torch: string } {
  const config = { ...m.peer, batch: m.batch, steps: m.steps, warmup: 2, threads };
  return runPythonPeer('train_peer.py', config, PEER_PYTHON);
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const modelNamed = (name: string) =>
  MODELS.find((m) => m.name === name || m.name.startsWith(name)) ??
  fail(`no bench model ${name} (${MODELS.map((m) => m.name).join(', ')})`);

async function main() {
  const threadCounts = (option('threads') ?? '2').split(',').map(Number);
  if (threadCounts.some((t) => !Number.isInteger(t) || t < 1))
    fail(`--threads takes positive integers, got ${option('threads')}`);
  const threads = threadCounts[0]!;
  if (option('ours')) return runOurs(modelNamed(option('ours')!), threads);
  if (process.argv.includes('--matmul')) return runMatmulCeiling(threads);
  if (option('profile')) return runProfile(modelNamed(option('profile')!), threads);
  const repeats = Number(option('repeats') ?? 3);
  const baseline = option('baseline');
  const only = (option('models') ?? process.env.BENCH_MODELS)?.split(',');
  const load = watchLoad(Math.max(...threadCounts));

  const results: Record<string, unknown>[] = [];
  const ceilings: Record<number, number> = {};
  for (const t of threadCounts) {
    const ceiling = child(['--matmul', '--threads', String(t)]).gflops!;
    ceilings[t] = round(ceiling);
    console.log(`onnxruntime MatMul 1024x1024 ceiling: ${ceiling.toFixed(1)} GFLOP/s (${t} threads)`);
    for (const m of MODELS.filter((m) => !only || only.some((name) => m.name.startsWith(name)))) {
      const oursRuns: Record<string, number>[] = [];
      const torchRuns: ReturnType<typeof peer>[] = [];
      const baselineRuns: Record<string, number>[] = [];
      for (let r = 0; r < repeats; r++) {
        oursRuns.push(child(['--ours', m.name, '--threads', String(t)]));
        torchRuns.push(peer(m, t));
        if (baseline) baselineRuns.push(child(['--ours', m.name, '--threads', String(t)], baseline));
      }
      const ours = {
        stepsPerSecond: median(oursRuns.map((x) => x.stepsPerSecond!)),
        peakRssMiB: median(oursRuns.map((x) => x.peakRssMiB!)),
        trainingFlops: oursRuns[0]!.trainingFlops!,
      };
      const torch = {
        stepsPerSecond: median(torchRuns.map((x) => x.stepsPerSecond)),
        peakRssMiB: median(torchRuns.map((x) => x.peakRssMiB)),
      };
      const result = {
        model: m.name,
        threads: t,
        repeats,
        ours_steps_per_s: round(ours.stepsPerSecond),
        torch_steps_per_s: round(torch.stepsPerSecond),
        throughput_ratio: round(ours.stepsPerSecond / torch.stepsPerSecond),
        // Ratio of each ABAB pair: its spread shows how far the machine's drift moves the ratio.
        pair_ratios: oursRuns.map((x, i) => round(x.stepsPerSecond! / torchRuns[i]!.stepsPerSecond)),
        target_ratio: m.target,
        torch_version: torchRuns[0]!.torch,
        ours_peak_rss_mib: Math.round(ours.peakRssMiB),
        torch_peak_rss_mib: Math.round(torch.peakRssMiB),
        memory_ratio: round(ours.peakRssMiB / torch.peakRssMiB),
        ours_gflops: round((ours.trainingFlops * ours.stepsPerSecond) / 1e9),
        fraction_of_matmul_ceiling: round((ours.trainingFlops * ours.stepsPerSecond) / 1e9 / ceiling),
        ...(baseline
          ? {
              baseline_steps_per_s: round(median(baselineRuns.map((x) => x.stepsPerSecond!))),
              baseline_ratio: round(median(baselineRuns.map((x) => x.stepsPerSecond!)) / torch.stepsPerSecond),
              baseline_peak_rss_mib: Math.round(median(baselineRuns.map((x) => x.peakRssMiB!))),
              speedup_over_baseline: round(ours.stepsPerSecond / median(baselineRuns.map((x) => x.stepsPerSecond!))),
            }
          : {}),
      };
      results.push(result);
      console.log(
        `${m.name}, ${t} thread(s): ours ${result.ours_steps_per_s} steps/s, PyTorch ${result.torch_steps_per_s} -> ratio ${result.throughput_ratio} (pairs ${result.pair_ratios.join(', ')}; target >= ${m.target}); ` +
          `peak RSS ${result.ours_peak_rss_mib} vs ${result.torch_peak_rss_mib} MiB -> ${result.memory_ratio}; ${result.ours_gflops} GFLOP/s = ${result.fraction_of_matmul_ceiling} of the MatMul ceiling` +
          (baseline
            ? `; baseline ${result.baseline_steps_per_s} steps/s (ratio ${result.baseline_ratio}, ${result.baseline_peak_rss_mib} MiB) -> ${result.speedup_over_baseline}x`
            : ''),
      );
    }
  }
  if (threadCounts.length > 1) {
    console.log('\nscaling (steps/s): model | threads | ours | PyTorch | ratio');
    for (const r of results)
      console.log(`${r.model} | ${r.threads} | ${r.ours_steps_per_s} | ${r.torch_steps_per_s} | ${r.throughput_ratio}`);
  }
  const report = load.report();
  console.log(
    `RESULT ${JSON.stringify({ matmul_ceiling_gflops: threadCounts.length === 1 ? ceilings[threads] : ceilings, ...(baseline ? { baseline } : {}), models: results, ...report })}`,
  );
}

function fail(message: string): never {
  throw new Error(message);
}

const round = (x: number) => Math.round(x * 1000) / 1000;

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
