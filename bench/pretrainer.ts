// npm run bench:pretrainer — pre-training throughput of ConVIRT, GLoRIA and MGCA on medsyn's
// engine (onnxruntime-node, CPU, 2 threads) against PyTorch 1.13 eager (Debian) on the same
// encoders (ResNet-18 at 128 px, 4-layer BERT), projections, loss, AdamW step and batch (32), both
// measured in this run; and the share of wall time our trainer waits on data loading (real
// covid-cxr PNGs read, decoded and augmented on a worker thread while the previous step computes;
// `--data-on-training-thread` does it on the training thread between steps instead, as before #17).
// Ours and PyTorch alternate, BENCH_REPEATS rounds (default 3); medians. Last line: RESULT {json}.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { FileArtifactStore, readJsonl } from '@medsyn/artifact-store';
import { makeTempDir } from '@medsyn/testing';
import { METHODS, parsePretrainingConfig } from '@medsyn/config';
import { runPretraining, type LogEntry } from '@medsyn/vlp';
import { median, runPythonPeer, watchLoad } from './machine';

const THREADS = 2;
const BATCH = 32;
const SIZE = 128;
const MAX_LENGTH = 128;
const STEPS = 5; // measured steps per objective, after the first (warm-up) step
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const DATA_WORKER = !process.argv.includes('--data-on-training-thread');
const root = path.join(__dirname, '..');

async function main(): Promise<void> {
  const load = watchLoad(THREADS);
  const tmp = makeTempDir('bench-pretrainer');
  const store = new FileArtifactStore(tmp.dir);
  await store.check();
  // One epoch of STEPS + 1 batches.
  const pairs = BATCH * (STEPS + 1);
  execFileSync('/usr/bin/python3', [
    path.join(root, 'libs', 'vlp', 'scripts', 'covid_pairs.py'),
    path.join(root, '..', 'shared', 'data', 'covid-cxr'),
    path.join(tmp.dir, 'covid'),
    String(pairs),
  ]);
  const rows: Record<string, unknown>[] = [];
  try {
    for (const method of METHODS) {
      // Ours and the peer alternate, REPEATS rounds each; medians, and each round's ratio.
      const rounds: { ours: OursRound; torch: number }[] = [];
      for (let round = 0; round < REPEATS; round++)
        rounds.push({ ours: await oursRound(store, method, round), torch: peerSamplesPerSecond(method) });
      const ours = median(rounds.map((r) => r.ours.samplesPerSecond));
      const torch = median(rounds.map((r) => r.torch));
      const row = {
        method,
        repeats: REPEATS,
        oursSamplesPerSecond: round(ours),
        // Data wait included: a loader that only moved its cost into the step would show here.
        oursWallSamplesPerSecond: round(median(rounds.map((r) => r.ours.wallSamplesPerSecond))),
        pytorchSamplesPerSecond: round(torch),
        ratio: round(ours / torch),
        pairRatios: rounds.map((r) => round(r.ours.samplesPerSecond / r.torch)),
        dataWaitShare: round(median(rounds.map((r) => r.ours.dataWaitShare))),
        steps: STEPS,
        finalLoss: round(rounds[0]!.ours.finalLoss),
      };
      rows.push(row);
      console.log(
        `${method.padEnd(8)} ours ${row.oursSamplesPerSecond} samples/s | PyTorch ${row.pytorchSamplesPerSecond} samples/s | ratio ${row.ratio} (rounds ${row.pairRatios.join(', ')}; target >= 0.7) | data wait ${(100 * row.dataWaitShare).toFixed(1)}% (target <= 3%)`,
      );
    }
  } finally {
    tmp.remove();
  }
  console.log(
    `RESULT ${JSON.stringify({ benchmark: 'pretrainer', batch: BATCH, imageSize: SIZE, dataWorker: DATA_WORKER, rows, ...load.report() })}`,
  );
}

interface OursRound {
  samplesPerSecond: number;
  wallSamplesPerSecond: number;
  dataWaitShare: number;
  finalLoss: number;
}

/** One run of our pretrainer: STEPS + 1 steps, the first one not timed. */
async function oursRound(
  store: FileArtifactStore,
  method: (typeof METHODS)[number],
  round: number,
): Promise<OursRound> {
  const config = parsePretrainingConfig({
    method,
    image_encoder: { architecture: 'resnet18', image_size: SIZE },
    text_encoder: { layers: 4, hidden_size: 128, heads: 4, max_length: MAX_LENGTH, vocab_size: 2000 },
    data: { real_pairs: ['covid/pairs.jsonl'], validation_fraction: 0 },
    batch_size: BATCH,
    epochs: 1,
    embedding_size: 128,
    optimizer: { learning_rate: 1e-4, weight_decay: 1e-4 },
    method_options: method === 'mgca' ? { prototypes: 500 } : {},
  });
  const prefix = `runs/${method}-${round}`;
  const result = await runPretraining({ store, config, prefix, intraOpThreads: THREADS, dataWorker: DATA_WORKER });
  const log: LogEntry[] = [];
  for await (const line of readJsonl<LogEntry>(store, `${prefix}/train_log.jsonl`)) if (line.ok) log.push(line.value);
  const measured = log.slice(1);
  const compute = measured.reduce((a, e) => a + e.step_s, 0);
  const wait = measured.reduce((a, e) => a + e.data_wait_s, 0);
  return {
    samplesPerSecond: (measured.length * BATCH) / compute,
    wallSamplesPerSecond: (measured.length * BATCH) / (compute + wait),
    dataWaitShare: wait / (wait + compute),
    finalLoss: result.finalLoss,
  };
}

/** PyTorch 1.13 eager on the same encoders, loss, optimizer and batch, in its own process. */
function peerSamplesPerSecond(method: string): number {
  const config = {
    method,
    threads: THREADS,
    embedding: 128,
    hidden: 128,
    heads: 4,
    layers: 4,
    vocab: 2000,
    prototypes: 500,
    batch: BATCH,
    size: SIZE,
    max_length: MAX_LENGTH,
    warmup: 1,
    steps: STEPS,
  };
  return runPythonPeer<{ samplesPerSecond: number }>('pretrainer_peer.py', config).samplesPerSecond;
}

const round = (v: number) => Math.round(v * 1000) / 1000;

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
