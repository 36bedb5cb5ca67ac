// npm run bench:pretrainer-torch [-- --rounds N] [-- --svg docs/images/pretrainer-torch-loss.svg]
// The PyTorch pretrainer (services/pretrainer-torch) against the TypeScript one (libs/vlp on
// onnxruntime-node) on one config, one data set (real covid-cxr X-rays with their notes), one seed
// and one WordPiece vocabulary, on this machine's CPUs:
//  - samples/s of the TypeScript trainer (1 and 2 threads) and of the PyTorch one with 1 rank x 1 thread,
//    1 rank x 2 threads and 2 ranks x 1 thread (torchrun, gloo): 2-rank scaling efficiency is
//    2-rank throughput / (2 x the 1-rank, 1-thread throughput);
//  - the loss curves of both implementations (their own seeded initialisations, same batches).
// The configurations run interleaved, ROUNDS times (default 3); figures are medians over rounds.
// The load average is sampled through the run (bench/machine.ts; the machine is shared). Last line: RESULT {json}.
import { execFileSync, spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { FileArtifactStore, readJsonl } from '@medsyn/artifact-store';
import { makeTempDir } from '@medsyn/testing';
import { parsePretrainingConfig } from '@medsyn/config';
import { runPretraining, type LogEntry } from '@medsyn/vlp';
import { median, watchLoad } from './machine';

const root = path.join(__dirname, '..');
const service = path.join(root, 'services', 'pretrainer-torch');
const BATCH = 16;
const EPOCHS = 3;
const STEPS_PER_EPOCH = 10;
const RAW = {
  method: 'convirt',
  image_encoder: { architecture: 'resnet18', image_size: 64, width: 32 },
  text_encoder: { layers: 2, hidden_size: 64, heads: 4, max_length: 64, vocab_size: 1000 },
  data: { real_pairs: ['covid/pairs.jsonl'], validation_fraction: 0, disable_augmentation: true },
  batch_size: BATCH,
  epochs: EPOCHS,
  embedding_size: 64,
  seed: 7,
  optimizer: { learning_rate: 3e-4, weight_decay: 1e-4 },
  schedule: { warmup_steps: 3 },
};

interface Run {
  name: string;
  samplesPerSecond: number;
  losses: number[];
  seconds: number;
}

const TORCH_RUNS = [
  { name: 'torch 1 rank x 1 thread', ranks: 1, threads: 1 },
  { name: 'torch 1 rank x 2 threads', ranks: 1, threads: 2 },
  { name: 'torch 2 ranks x 1 thread', ranks: 2, threads: 1 },
];

/** Throughput of a run from its log: steps after the first (warm-up), compute and data wait together. */
function throughput(log: LogEntry[]): number {
  const measured = log.slice(1);
  return (measured.length * BATCH) / measured.reduce((a, e) => a + e.step_s + e.data_wait_s, 0);
}

async function readLog(store: FileArtifactStore, prefix: string): Promise<LogEntry[]> {
  const log: LogEntry[] = [];
  for await (const line of readJsonl<LogEntry>(store, `${prefix}/train_log.jsonl`)) if (line.ok) log.push(line.value);
  return log;
}

const TS_RUNS = [
  { name: 'typescript 1 thread', threads: 1 },
  { name: 'typescript 2 threads', threads: 2 },
];

async function typescriptRun(
  store: FileArtifactStore,
  prefix: string,
  vocab: string | undefined,
  run: (typeof TS_RUNS)[number],
): Promise<Run> {
  const started = Date.now();
  const config = parsePretrainingConfig({ ...RAW, text_encoder: { ...RAW.text_encoder, ...(vocab ? { vocab } : {}) } });
  await runPretraining({ store, config, prefix, intraOpThreads: run.threads });
  const log = await readLog(store, prefix);
  return {
    name: run.name,
    samplesPerSecond: throughput(log),
    losses: log.map((e) => e.loss),
    seconds: (Date.now() - started) / 1000,
  };
}

function torchRun(
  store: FileArtifactStore,
  dir: string,
  prefix: string,
  vocab: string,
  run: (typeof TORCH_RUNS)[number],
): Promise<Run> {
  const configFile = path.join(dir, `${prefix.replaceAll('/', '_')}.json`);
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      ...RAW,
      data: { ...RAW.data, real_pairs: [`${store.rootUri}/covid/pairs.jsonl`] },
      text_encoder: { ...RAW.text_encoder, vocab },
    }),
  );
  const module = [
    '-m',
    'medsyn_pretrainer_torch.train',
    '--config',
    configFile,
    '--prefix',
    prefix,
    '--threads',
    String(run.threads),
  ];
  const args =
    run.ranks === 1
      ? module
      : ['-m', 'medsyn_pretrainer_torch.torchrun', '--standalone', `--nproc_per_node=${run.ranks}`, ...module];
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', args, {
      cwd: service,
      env: {
        ...process.env,
        MEDSYN_STORE: store.rootUri,
        OMP_NUM_THREADS: String(run.threads),
        OPENBLAS_NUM_THREADS: '1',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', async (code) => {
      if (code !== 0) return reject(new Error(`${run.name} exited ${code}:\n${stderr.slice(-2000)}`));
      const log = await readLog(store, prefix);
      resolve({
        name: run.name,
        samplesPerSecond: throughput(log),
        losses: log.map((e) => e.loss),
        seconds: (Date.now() - started) / 1000,
      });
    });
  });
}

const round = (v: number, digits = 3) => Math.round(v * 10 ** digits) / 10 ** digits;

/** The two loss curves as an SVG line chart (no plotting library on the test machines). */
function lossChart(curves: { name: string; colour: string; losses: number[] }[]): string {
  const [w, h, pad] = [640, 320, 40];
  const all = curves.flatMap((c) => c.losses);
  const [lo, hi] = [Math.min(...all), Math.max(...all)];
  const steps = Math.max(...curves.map((c) => c.losses.length));
  const x = (i: number) => pad + ((w - 2 * pad) * i) / Math.max(1, steps - 1);
  const y = (v: number) => h - pad - ((h - 2 * pad) * (v - lo)) / Math.max(1e-9, hi - lo);
  const lines = curves.map((c, k) =>
    [
      `<polyline fill="none" stroke="${c.colour}" stroke-width="2" points="${c.losses.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`,
      `<text x="${w - pad - 260}" y="${pad + 16 * k}" fill="${c.colour}" font-size="12">${c.name}</text>`,
    ].join('\n'),
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="black"/><line x1="${pad}" y1="${pad}" x2="${pad}" y2="${h - pad}" stroke="black"/>`,
    `<text x="${w / 2}" y="${h - 8}" font-size="12" text-anchor="middle">step (ConVIRT, ResNet-18 at 64 px, batch ${BATCH}, covid-cxr, seed ${RAW.seed})</text>`,
    `<text x="8" y="${pad - 10}" font-size="12">loss ${hi.toFixed(2)}</text><text x="8" y="${h - pad}" font-size="12">${lo.toFixed(2)}</text>`,
    ...lines,
    '</svg>',
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, svg: { type: 'string' } } });
  const rounds = Number(values.rounds);
  // Up to 2 ranks (or 2 threads) at a time.
  const load = watchLoad(2);
  const tmp = makeTempDir('bench-pretrainer-torch');
  const store = new FileArtifactStore(tmp.dir);
  await store.check();
  execFileSync('/usr/bin/python3', [
    path.join(root, 'libs', 'vlp', 'scripts', 'covid_pairs.py'),
    path.join(root, '..', 'shared', 'data', 'covid-cxr'),
    path.join(tmp.dir, 'covid'),
    String(BATCH * STEPS_PER_EPOCH),
  ]);
  const byName = new Map<string, Run[]>();
  try {
    // A first TypeScript run trains the WordPiece vocabulary that every run then shares (not measured).
    await typescriptRun(store, 'runs/vocabulary', undefined, TS_RUNS[1]!);
    const vocab = `${store.rootUri}/runs/vocabulary/tokenizer/vocab.txt`;
    for (let round = 0; round < rounds; round++) {
      // Interleaved, the order rotated every round, so a burst of load elsewhere hits every configuration alike.
      const order = [...TORCH_RUNS.map((r) => r.name), ...TS_RUNS.map((r) => r.name)];
      const rotated = [...order.slice(round % order.length), ...order.slice(0, round % order.length)];
      for (const name of rotated) {
        const spec = TORCH_RUNS.find((r) => r.name === name);
        const prefix = `runs/${round}-${name.replaceAll(' ', '-')}`;
        const run = spec
          ? await torchRun(store, tmp.dir, prefix, vocab, spec)
          : await typescriptRun(
              store,
              prefix,
              vocab,
              TS_RUNS.find((r) => r.name === name)!,
            );
        byName.set(run.name, [...(byName.get(run.name) ?? []), run]);
        console.log(
          `round ${round + 1}/${rounds}  ${run.name.padEnd(38)} ${run.samplesPerSecond.toFixed(2).padStart(8)} samples/s  (${run.seconds.toFixed(1)} s, load ${loadavg()[0]!.toFixed(2)})`,
        );
      }
    }
  } finally {
    tmp.remove();
  }
  const rate = (name: string) => median(byName.get(name)!.map((r) => r.samplesPerSecond));
  const [ts1, ts] = TS_RUNS.map((r) => rate(r.name)) as [number, number];
  const [t11, t12, t21] = TORCH_RUNS.map((r) => rate(r.name));
  const efficiency = t21! / (2 * t11!);
  const tsLosses = byName.get('typescript 2 threads')![0]!.losses;
  const torchLosses = byName.get('torch 1 rank x 2 threads')![0]!.losses;
  const ddpLosses = byName.get('torch 2 ranks x 1 thread')![0]!.losses;
  const meanGap = tsLosses.reduce((a, v, i) => a + Math.abs(v - torchLosses[i]!), 0) / tsLosses.length;
  const half = (l: number[]) => [median(l.slice(0, 5)), median(l.slice(-5))];
  console.log(
    `medians: typescript 1 thread ${ts1.toFixed(2)}, 2 threads ${ts.toFixed(2)} samples/s | torch 1x1 ${t11!.toFixed(2)} (x${(t11! / ts1).toFixed(2)} the TypeScript trainer at 1 thread), 1x2 ${t12!.toFixed(2)} (x${(t12! / ts).toFixed(2)} at 2 threads), 2x1 ${t21!.toFixed(2)}`,
  );
  console.log(`2-rank scaling efficiency (2x1 / (2 x 1x1)): ${(100 * efficiency).toFixed(1)}%`);
  console.log(
    `loss, median of the first / last 5 steps: typescript ${half(tsLosses)
      .map((v) => v.toFixed(3))
      .join(' -> ')} | torch ${half(torchLosses)
      .map((v) => v.toFixed(3))
      .join(
        ' -> ',
      )}; mean |gap| ${meanGap.toFixed(3)}; 2 ranks vs 1 rank max |gap| ${Math.max(...ddpLosses.map((v, i) => Math.abs(v - torchLosses[i]!))).toExponential(1)}`,
  );
  if (values.svg) {
    fs.writeFileSync(
      values.svg,
      lossChart([
        { name: 'TypeScript (libs/vlp, onnxruntime)', colour: '#1f77b4', losses: tsLosses },
        { name: 'PyTorch (services/pretrainer-torch)', colour: '#d62728', losses: torchLosses },
      ]),
    );
    console.log(`loss curves written to ${values.svg}`);
  }
  const loadReport = load.report();
  console.log(
    `RESULT ${JSON.stringify({
      ...loadReport,
      benchmark: 'pretrainer-torch',
      method: RAW.method,
      batch: BATCH,
      steps: EPOCHS * STEPS_PER_EPOCH,
      rounds,
      samplesPerSecond: {
        typescript1Thread: round(ts1),
        typescript2Threads: round(ts),
        torch1Rank1Thread: round(t11!),
        torch1Rank2Threads: round(t12!),
        torch2Ranks1Thread: round(t21!),
      },
      torchOverTypescript1Thread: round(t11! / ts1),
      torchOverTypescript2Threads: round(t12! / ts),
      scalingEfficiency2Ranks: round(efficiency),
      loss: {
        typescript: tsLosses.map((v) => round(v, 4)),
        torch: torchLosses.map((v) => round(v, 4)),
        meanAbsGap: round(meanGap, 4),
      },
    })}`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
