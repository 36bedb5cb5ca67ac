// npm run bench:synthesizer — denoising steps/s and images/s of medsyn's synthesizer
// (onnxruntime-node, CPU) for the tiny test model and a mid-size UNet (SD 2.x topology scaled
// down, 32x32 latents, cross-attention width 1024), side by side in the same run with PyTorch 1.13
// eager (Debian) running the same UNet loaded from the same ONNX file's weights. A "denoising
// step" is one UNet evaluation of a classifier-free-guidance batch (2 x images). Last line:
// RESULT {json}. Ours and PyTorch alternate, BENCH_REPEATS rounds (default 3); medians. With --full: RoentGen-v2's full architecture at 512 px (bench/synthesizer-full.ts).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildTinyModel, TextToImageModel } from '@medsyn/diffusion';
import { UNET_PRESETS, type UNetConfig } from '@medsyn/model-zoo';
import { median, runPythonPeer, watchLoad } from './machine';
import { measureVariant, runFullBench } from './synthesizer-full';

const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);

interface Case {
  name: string;
  unet: UNetConfig;
  latent: number;
  /** Images denoised together (the UNet batch is twice that). */
  batch: number;
  unetSteps: number;
  /** Denoising steps of the end-to-end images/s run. */
  imageSteps: number;
  target: number;
}

const CASES: Case[] = [
  {
    name: 'tiny_8x8_latents',
    unet: UNET_PRESETS.tiny,
    latent: 8,
    batch: 1,
    unetSteps: 200,
    imageSteps: 20,
    target: 1.2,
  },
  {
    name: 'mid_sd2_topology_32x32_latents',
    // SD 2.1's UNet (320/640/1280/1280, 2 layers per block, linear projections, 1024-wide text
    // context) with 9/40 of its channels (~49M parameters) and 72-wide attention heads.
    unet: {
      inChannels: 4,
      outChannels: 4,
      blockChannels: [72, 144, 288, 288],
      crossAttention: [true, true, true, false],
      layersPerBlock: 2,
      crossAttentionDim: 1024,
      heads: [1, 2, 4, 4],
      normGroups: 24,
      linearProjection: true,
    },
    latent: 32,
    batch: 1,
    unetSteps: 12,
    imageSteps: 4,
    target: 1.2,
  },
];

/** The deterministic inputs both sides use (zoo_reference-compatible formulas). */
function unetFeeds(c: Case): Record<string, ort.Tensor> {
  const rows = 2 * c.batch;
  const n = rows * c.unet.inChannels * c.latent * c.latent;
  const m = rows * 77 * c.unet.crossAttentionDim;
  return {
    sample: new ort.Tensor(
      'float32',
      Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37)),
      [rows, c.unet.inChannels, c.latent, c.latent],
    ),
    timestep: new ort.Tensor('float32', new Float32Array(rows).fill(500), [rows]),
    encoder_hidden_states: new ort.Tensor(
      'float32',
      Float32Array.from({ length: m }, (_, i) => Math.cos(i * 0.11)),
      [rows, 77, c.unet.crossAttentionDim],
    ),
  };
}

function parameterCount(file: string): number {
  // Each parameter is an initialiser; count their elements through onnx in Python (exact, cheap).
  const out = execFileSync(
    '/usr/bin/python3',
    [
      '-c',
      'import onnx,sys,numpy as np; m=onnx.load(sys.argv[1]); print(sum(int(np.prod(i.dims)) for i in m.graph.initializer))',
      file,
    ],
    { encoding: 'utf8' },
  );
  return Number(out.trim());
}

/** PyTorch's UNet evaluations per second on the same ONNX file's weights and the same inputs, in its own process. */
function peerSteps(c: Case, unetFile: string): { stepsPerSecond: number; checksum: number } {
  const u = c.unet;
  const meta = {
    model: 'unet',
    in_channels: String(u.inChannels),
    out_channels: String(u.outChannels),
    block_channels: u.blockChannels.join(','),
    cross_attention: u.crossAttention.map((x) => (x ? '1' : '0')).join(','),
    heads: u.heads.join(','),
    layers_per_block: String(u.layersPerBlock),
    norm_groups: String(u.normGroups),
    cross_attention_dim: String(u.crossAttentionDim),
  };
  const config = {
    onnx: unetFile,
    meta,
    batch: c.batch,
    latent: c.latent,
    tokens: 77,
    steps: c.unetSteps,
    warmup: 2,
    threads: THREADS,
  };
  return runPythonPeer('synthesizer_peer.py', config);
}

async function measure(c: Case, dir: string) {
  const unetFile = path.join(dir, 'unet', 'model.onnx');
  const session = await ort.InferenceSession.create(unetFile, {
    intraOpNumThreads: THREADS,
    graphOptimizationLevel: 'all',
  });
  const feeds = unetFeeds(c);
  for (let i = 0; i < 2; i++) await session.run(feeds);
  let out: Float32Array = new Float32Array();
  // Ours and the peer alternate, REPEATS rounds of `unetSteps` evaluations each; medians and per-round ratios.
  const ours: number[] = [];
  const torch: number[] = [];
  let torchChecksum = NaN;
  for (let round = 0; round < REPEATS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < c.unetSteps; i++) out = (await session.run(feeds)).out_sample!.data as Float32Array;
    ours.push(c.unetSteps / (Number(process.hrtime.bigint() - start) / 1e9));
    const peer = peerSteps(c, unetFile);
    torch.push(peer.stepsPerSecond);
    torchChecksum = peer.checksum;
  }
  await session.release();
  const checksum = out.reduce((a, v) => a + v, 0);

  // End to end: text encoder, every denoising step with guidance, VAE decode, for `batch` images.
  const model = await TextToImageModel.load(dir, { intraOpThreads: THREADS });
  const request = (seed: number) => ({
    prompt: 'Small left pleural effusion.',
    seed: BigInt(seed),
    numInferenceSteps: c.imageSteps,
    guidanceScale: 3,
  });
  await model.generate([request(0)]);
  const e2eStart = process.hrtime.bigint();
  await model.generate(Array.from({ length: c.batch }, (_, i) => request(i + 1)));
  const e2eSeconds = Number(process.hrtime.bigint() - e2eStart) / 1e9;
  await model.close();

  return {
    name: c.name,
    unetParameters: parameterCount(unetFile),
    latent: c.latent,
    imagesPerBatch: c.batch,
    repeats: REPEATS,
    oursStepsPerSecond: median(ours),
    torchStepsPerSecond: median(torch),
    ratio: median(ours) / median(torch),
    pairRatios: ours.map((o, i) => Math.round((o / torch[i]!) * 1000) / 1000),
    target: c.target,
    // Same weights, same inputs: the outputs must agree (sums over the whole output tensor).
    checksumOurs: checksum,
    checksumTorch: torchChecksum,
    oursImagesPerSecond: c.batch / e2eSeconds,
    oursEndToEndSecondsPerImage: e2eSeconds / c.batch,
    endToEndSteps: c.imageSteps,
  };
}

async function main() {
  const load = watchLoad(THREADS);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-synthesizer-'));
  const results = [];
  try {
    for (const c of CASES) {
      const dir = buildTinyModel(path.join(root, c.name), { unet: c.unet, latentSize: c.latent, textLayers: 2 });
      const r = await measure(c, dir);
      results.push(r);
      console.log(
        `${r.name}: UNet ${(r.unetParameters / 1e6).toFixed(1)}M params, CFG batch ${2 * r.imagesPerBatch}: ours ${r.oursStepsPerSecond.toFixed(2)} steps/s, PyTorch ${r.torchStepsPerSecond.toFixed(2)} steps/s, ratio ${r.ratio.toFixed(2)} (medians of ${r.repeats} alternating rounds; rounds ${r.pairRatios.join(', ')}; target ${r.target}); ` +
          `output sums ${r.checksumOurs.toFixed(3)} vs ${r.checksumTorch.toFixed(3)}; end to end ${r.oursImagesPerSecond.toFixed(3)} images/s at ${r.endToEndSteps} steps`,
      );
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  console.log(`RESULT ${JSON.stringify({ cases: results, ...load.report() })}`);
}

const argv = process.argv.slice(2);
const fail = (error: Error) => {
  console.error(error.message);
  process.exit(2);
};
if (argv.includes('--measure')) measureVariant(argv).catch(fail);
else if (argv.includes('--full')) runFullBench(argv).catch(fail);
else void main();
