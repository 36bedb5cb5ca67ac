// npm run bench:synthesizer -- --full [--ep cpu|cuda] [--steps N] — a random-weight model with
// RoentGen-v2's exact architecture (SD 2.1-base: 865M-parameter UNet, 340M text encoder, full VAE
// decoder, 512 px), float32 and float16 (the same weights converted), loaded by the service's
// loader (TextToImageModel) and timed: UNet steps/s for a classifier-free-guidance batch of 2, VAE
// decode, one image end to end, peak RSS, GPU memory and utilisation (nvidia-smi) under --ep cuda,
// and how far the float16 image is from the float32 one. The model is built once into
// BENCH_CACHE_DIR (default $TMPDIR/medsyn-roentgen-size-v1, about 7.5 GB). Each variant runs in
// its own process so that its peak RSS is its own. Last line: RESULT {json}.
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { TextToImageModel, type ExecutionProvider } from '@medsyn/diffusion';
import { GraphBuilder, encodeModel } from '@medsyn/onnx-graph';
import { parseNvidiaSmiCsv, type GpuReading } from '@medsyn/telemetry';
import { watchLoad } from './machine';

const DTYPES = ['float32', 'float16'] as const;
type Dtype = (typeof DTYPES)[number];
/** Bump when the builder's output changes, so a stale cached model is not reused. */
const MODEL_VERSION = 'v1';
/** UNet2DConditionModel of stabilityai/stable-diffusion-2-1-base, counted by diffusers (sum of p.numel()). */
const SD21_UNET_PARAMETERS = 865_910_724;
const PROMPT = 'Small left pleural effusion. No pneumothorax.';
const SEED = 42n;
/**
 * The float16 image may differ from the float32 one by at most one 8-bit grey level on average
 * and 8 at any pixel: the PNG is written in 8 bits, so a mean below one level is invisible, and
 * float16's 11-bit significand over ~100 layers moves single pixels by a few levels.
 */
const TOLERANCE = { meanAbs: 1 / 255, maxAbs: 8 / 255 };

/** What a variant's process reports (the fields printed here; RESULT carries them all). */
interface VariantResult {
  load_seconds: number;
  unet_evaluations: number;
  unet_steps_per_second: number;
  unet_seconds_per_step: number;
  vae_decode_seconds: number;
  end_to_end_seconds: number;
  peak_rss_bytes: number;
  gpu?: { model: string; memory_used_max_bytes: number; utilization_mean: number };
}

interface Args {
  ep: ExecutionProvider;
  steps: number;
  threads: number;
}

function parseArgs(argv: string[]): Args {
  const value = (flag: string) => {
    const at = argv.indexOf(flag);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const ep = (value('--ep') ?? 'cpu') as ExecutionProvider;
  if (ep !== 'cpu' && ep !== 'cuda') throw new Error(`--ep must be cpu or cuda, got ${ep}`);
  // CPU: 2 PNDM steps (3 UNet evaluations: PLMS's first step takes two); GPU: 50, as published figures use.
  const steps = Number(value('--steps') ?? (ep === 'cuda' ? 50 : 2));
  return { ep, steps, threads: Number(process.env.BENCH_THREADS ?? 2) };
}

/** Fails with what to do when onnxruntime-node cannot run CUDA here (no GPU build, no driver). */
async function requireCuda(): Promise<void> {
  const g = new GraphBuilder('cuda_probe');
  g.output(g.op('Identity', [g.input('x', 'float32', [1])]), 'y');
  const probe = Buffer.from(encodeModel(g.toModelProto()));
  try {
    const session = await ort.InferenceSession.create(probe, { executionProviders: ['cuda'] });
    await session.release();
  } catch (error) {
    throw new Error(
      `--ep cuda: onnxruntime-node could not start its CUDA execution provider here (${(error as Error).message.split('\n')[0]}). ` +
        'It needs an NVIDIA GPU with its driver and onnxruntime-node installed with its CUDA binaries (npm install with ONNXRUNTIME_NODE_INSTALL=cuda12, as the GPU images do).',
    );
  }
}

function nodeScript(script: string, args: string[]): string[] {
  return ['--conditions=medsyn-source', '--import', 'tsx', script, ...args];
}

/** The float32 and float16 models, built once (in a child process) and reused. */
function cachedModels(): {
  dirs: Record<Dtype, string>;
  build: { parameters: Record<string, number>; build_seconds: number; peak_rss_bytes: number };
} {
  const root = process.env.BENCH_CACHE_DIR ?? path.join(os.tmpdir(), `medsyn-roentgen-size-${MODEL_VERSION}`);
  const dirs = { float32: path.join(root, 'float32'), float16: path.join(root, 'float16') };
  const marker = path.join(root, 'build.json');
  if (!fs.existsSync(marker)) {
    fs.rmSync(root, { recursive: true, force: true });
    console.log(`building the RoentGen-size models into ${root} (once; a few minutes)`);
    const script = path.join(__dirname, '..', 'libs', 'diffusion', 'scripts', 'build-roentgen-size-model.ts');
    const out = execFileSync(
      process.execPath,
      nodeScript(script, ['--float32', dirs.float32, '--float16', dirs.float16]),
      { encoding: 'utf8', maxBuffer: 1 << 20 },
    );
    fs.writeFileSync(marker, out.trim().split('\n').pop()!);
  }
  return { dirs, build: JSON.parse(fs.readFileSync(marker, 'utf8')) };
}

/** nvidia-smi every second while `during` runs: peak memory used and mean utilisation. */
async function sampleGpu<T>(
  ep: ExecutionProvider,
  during: () => Promise<T>,
): Promise<{ result: T; gpu?: { model: string; memory_used_max_bytes: number; utilization_mean: number } }> {
  if (ep !== 'cuda') return { result: await during() };
  const readings: GpuReading[] = [];
  const sample = () =>
    execFile(
      'nvidia-smi',
      ['--query-gpu=index,name,utilization.gpu,memory.used,memory.total', '--format=csv,noheader,nounits'],
      (error, stdout) => {
        if (!error)
          readings.push(
            ...parseNvidiaSmiCsv(stdout).filter(
              (r) => r.index === (process.env.CUDA_VISIBLE_DEVICES?.split(',')[0] ?? '0'),
            ),
          );
      },
    );
  sample();
  const timer = setInterval(sample, 1000);
  try {
    const result = await during();
    return {
      result,
      gpu: readings.length
        ? {
            model: readings[0]!.model,
            memory_used_max_bytes: Math.max(...readings.map((r) => r.memoryUsedBytes)),
            utilization_mean: readings.reduce((a, r) => a + r.utilizationRatio, 0) / readings.length,
          }
        : undefined,
    };
  } finally {
    clearInterval(timer);
  }
}

/** One variant, in this process: load, generate one image with timestamps per UNet evaluation. */
export async function measureVariant(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  const dir = argv[argv.indexOf('--measure') + 1]!;
  const out = argv[argv.indexOf('--out') + 1]!;
  const loadStart = process.hrtime.bigint();
  // Without the CPU arena: with it, every session keeps its activation peak allocated (peak RSS 9.2 / 11.3 GiB
  // for float32 / float16 in one run here, 7.0 / 7.7 GiB without).
  const model = await TextToImageModel.load(dir, {
    executionProvider: args.ep,
    intraOpThreads: args.threads,
    memoryArena: false,
  });
  const loadSeconds = seconds(loadStart);
  const request = { prompt: PROMPT, seed: SEED, numInferenceSteps: args.steps, guidanceScale: 3 };
  // On a GPU the first run also picks kernels (cuDNN) and allocates: warm up first. On the CPU a
  // warm-up image would double a run of many minutes; the first evaluation is left out instead.
  if (args.ep === 'cuda') await model.generate([request]);
  const marks: bigint[] = [];
  const start = process.hrtime.bigint();
  const { result: images, gpu } = await sampleGpu(args.ep, () =>
    model.generate([request], () => marks.push(process.hrtime.bigint())),
  );
  const end = process.hrtime.bigint();
  await model.close();
  const first = marks[0]!;
  const last = marks[marks.length - 1]!;
  const unetSeconds = Number(last - first) / 1e9 / (marks.length - 1);
  const pixels = images[0]!.image.data as Float32Array;
  fs.writeFileSync(`${out}.f32`, Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength));
  const result: VariantResult & Record<string, unknown> = {
    dir,
    unet_dtype: model.info.unetDtype,
    load_seconds: round(loadSeconds, 1),
    unet_evaluations: marks.length,
    unet_steps_per_second: round(1 / unetSeconds, 4),
    unet_seconds_per_step: round(unetSeconds, 2),
    first_evaluation_seconds: round(Number(first - start) / 1e9, 2),
    vae_decode_seconds: round(Number(end - last) / 1e9, 2),
    end_to_end_seconds: round(Number(end - start) / 1e9, 2),
    images_per_second: round(1 / (Number(end - start) / 1e9), 4),
    image_mean: round(mean(pixels), 4),
    image_std: round(Math.sqrt(mean(pixels.map((v) => v * v)) - mean(pixels) ** 2), 4),
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    ...(gpu ? { gpu } : {}),
  };
  fs.writeFileSync(out, JSON.stringify(result));
}

export async function runFullBench(argv: string[]): Promise<void> {
  const args = parseArgs(argv);
  if (args.ep === 'cuda') await requireCuda();
  const load = watchLoad(args.threads);
  const { dirs, build } = cachedModels();
  console.log(
    `parameters: ${Object.entries(build.parameters)
      .map(([k, v]) => `${k} ${(v / 1e6).toFixed(1)}M`)
      .join(
        ', ',
      )} (UNet ${build.parameters.unet}, ${build.parameters.unet === SD21_UNET_PARAMETERS ? 'exactly' : 'NOT'} SD 2.1-base's ${SD21_UNET_PARAMETERS}); built in ${build.build_seconds} s`,
  );
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-synthesizer-full-'));
  const variants: Partial<Record<Dtype, VariantResult>> = {};
  const images: Partial<Record<Dtype, Float32Array>> = {};
  try {
    for (const dtype of DTYPES) {
      const out = path.join(work, `${dtype}.json`);
      execFileSync(
        process.execPath,
        nodeScript(path.join(__dirname, 'synthesizer.ts'), [
          '--measure',
          dirs[dtype],
          '--out',
          out,
          '--ep',
          args.ep,
          '--steps',
          String(args.steps),
        ]),
        { stdio: 'inherit' },
      );
      const r = JSON.parse(fs.readFileSync(out, 'utf8')) as VariantResult;
      variants[dtype] = r;
      const bytes = fs.readFileSync(`${out}.f32`);
      images[dtype] = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      console.log(
        `${dtype}: load ${r.load_seconds} s; UNet (CFG batch 2) ${r.unet_steps_per_second} steps/s (${r.unet_seconds_per_step} s/step over ${r.unet_evaluations - 1} of ${r.unet_evaluations} evaluations); ` +
          `VAE decode ${r.vae_decode_seconds} s; 1 image, ${args.steps} steps, end to end ${r.end_to_end_seconds} s; peak RSS ${(r.peak_rss_bytes / 2 ** 30).toFixed(2)} GiB` +
          (r.gpu
            ? `; GPU ${r.gpu.model}: ${(r.gpu.memory_used_max_bytes / 2 ** 30).toFixed(1)} GiB, utilisation ${(100 * r.gpu.utilization_mean).toFixed(0)} %`
            : ''),
      );
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const a = images.float32!;
  const b = images.float16!;
  let maxAbs = 0;
  let sumAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= maxAbs)) maxAbs = d; // NaN counts as the worst difference
    sumAbs += d;
  }
  const comparison = {
    max_abs: round(maxAbs, 5),
    mean_abs: round(sumAbs / a.length, 6),
    tolerance: { max_abs: round(TOLERANCE.maxAbs, 5), mean_abs: round(TOLERANCE.meanAbs, 5) },
  };
  const agree = comparison.mean_abs <= TOLERANCE.meanAbs && comparison.max_abs <= TOLERANCE.maxAbs;
  console.log(
    `float16 vs float32 image (same seed, same weights converted), pixels in [0, 1]: mean |diff| ${comparison.mean_abs}, max ${comparison.max_abs}: ${agree ? 'within' : 'OUTSIDE'} the tolerance (mean 1/255, max 8/255)`,
  );
  console.log(
    `RESULT ${JSON.stringify({
      bench: 'synthesizer-full',
      ep: args.ep,
      steps: args.steps,
      parameters: build.parameters,
      build_seconds: build.build_seconds,
      float32: variants.float32,
      float16: variants.float16,
      float16_vs_float32: { ...comparison, agree },
      ...load.report(),
    })}`,
  );
  if (!agree) process.exitCode = 1;
}

const seconds = (since: bigint) => Number(process.hrtime.bigint() - since) / 1e9;
const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
const mean = (xs: Float32Array) => xs.reduce((a, v) => a + v, 0) / xs.length;
