// npm run bench:dataset — `exportDataset` and `importDataset` (libs/dataset) on synthetic-looking
// 256 px 8-bit PNGs with 600-character reports, against the same work done with Python's tarfile
// (bench/python/dataset_peer.py, Debian /usr/bin/python3: what webdataset's writer and readers use
// underneath) on the same files, measured in this run. Samples: BENCH_DATASET_SAMPLES (default
// 1000), shards of 250. Runs: BENCH_DATASET_RUNS (default 5), ours and the peer alternating; medians.
// Last line: RESULT {json}.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileArtifactStore, putJsonl } from '@medsyn/artifact-store';
import { exportDataset, importDataset } from '@medsyn/dataset';
import { encodeGrayPng } from '@medsyn/imaging';
import { seededRandom } from '@medsyn/random';
import { median, watchLoad } from './machine';

const SAMPLES = Number(process.env.BENCH_DATASET_SAMPLES ?? 1000);
const SHARD_SIZE = 250;
const SIZE = 256;
const RUNS = Number(process.env.BENCH_DATASET_RUNS ?? 5);

/** A smooth field with noise: compresses like a radiograph (neither flat nor random). */
function radiographLike(index: number): Buffer {
  const random = seededRandom(index + 1);
  const data = new Float32Array(SIZE * SIZE);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const lung =
        Math.exp(-(((x - SIZE * 0.3) ** 2 + (y - SIZE / 2) ** 2) / (SIZE * SIZE * 0.03))) +
        Math.exp(-(((x - SIZE * 0.7) ** 2 + (y - SIZE / 2) ** 2) / (SIZE * SIZE * 0.03)));
      data[y * SIZE + x] = 0.8 - 0.5 * lung + 0.05 * random();
    }
  }
  return Buffer.from(encodeGrayPng({ width: SIZE, height: SIZE, data }));
}

async function main() {
  // Both sides are single-threaded (Node's main thread, Python's tarfile).
  const load = watchLoad(1);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-dataset-'));
  try {
    const storeDir = path.join(tmp, 'store');
    const store = new FileArtifactStore(storeDir);
    const lines: unknown[] = [];
    const reports: unknown[] = [];
    const peerSamples: { key: string; image: string; text: string }[] = [];
    let imageBytes = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const id = `r${String(i).padStart(6, '0')}`;
      const png = radiographLike(i);
      imageBytes += png.length;
      const ref = await store.put(`synth/images/${id}.png`, png);
      const text =
        `FINDINGS: ${'The cardiomediastinal silhouette is within normal limits. '.repeat(9)}IMPRESSION: No acute disease (${id}).`.slice(
          0,
          600,
        );
      lines.push({
        id,
        image: ref.uri,
        report: `No acute disease (${id}).`,
        image_sha256: ref.sha256,
        seed: String(i),
        accepted: true,
        attempts: 1,
        rejections: {},
        prompt_truncated: false,
      });
      reports.push({ id, text });
      peerSamples.push({ key: id, image: path.join(storeDir, 'synth', 'images', `${id}.png`), text });
    }
    await putJsonl(store, 'synth/pairs.jsonl', lines);
    await putJsonl(store, 'anon/anonymized.jsonl', reports);
    fs.writeFileSync(path.join(tmp, 'samples.json'), JSON.stringify(peerSamples));
    console.log(
      `${SAMPLES} samples, ${(imageBytes / SAMPLES / 1024).toFixed(1)} KiB per PNG (${SIZE} px, 8-bit), shards of ${SHARD_SIZE}`,
    );

    // Ours and the peer alternate (ABAB...), so that both see the same moments of this shared machine.
    const exports: number[] = [];
    const imports: number[] = [];
    const peers: {
      export_seconds: number;
      import_seconds: number;
      export_sync_seconds: number;
      import_sync_seconds: number;
      samples: number;
    }[] = [];
    let bundleBytes = 0;
    for (let run = 0; run < RUNS; run++) {
      const bundle = new FileArtifactStore(path.join(tmp, `bundle-${run}`));
      const t0 = performance.now();
      const result = await exportDataset({
        store,
        pairs: ['synth/pairs.jsonl'],
        reports: 'anon/anonymized.jsonl',
        out: bundle,
        shardSize: SHARD_SIZE,
        card: { generator: { name: 'bench' }, licence: 'CC0-1.0' },
      });
      exports.push((performance.now() - t0) / 1000);
      bundleBytes = result.card.shards.reduce((n, s) => n + s.size_bytes, 0);
      const t1 = performance.now();
      const imported = await importDataset({ bundle, store: new FileArtifactStore(path.join(tmp, `import-${run}`)) });
      imports.push((performance.now() - t1) / 1000);
      if (imported.samples !== SAMPLES) throw new Error(`imported ${imported.samples} of ${SAMPLES}`);
      fs.rmSync(path.join(tmp, 'peer-bundle'), { recursive: true, force: true });
      fs.rmSync(path.join(tmp, 'peer-import'), { recursive: true, force: true });
      peers.push(
        JSON.parse(
          execFileSync('/usr/bin/python3', [
            path.join(__dirname, 'python', 'dataset_peer.py'),
            tmp,
            String(SHARD_SIZE),
          ]).toString(),
        ),
      );
    }
    const ours = { export: median(exports), import: median(imports) };
    const peer = {
      export: median(peers.map((p) => p.export_seconds)),
      import: median(peers.map((p) => p.import_seconds)),
      // Made durable (os.sync() after the phase), as ours is: what tarfile's speed costs when it must last.
      durableExport: median(peers.map((p) => p.export_seconds + p.export_sync_seconds)),
      durableImport: median(peers.map((p) => p.import_seconds + p.import_sync_seconds)),
    };
    const mb = bundleBytes / 1e6;
    console.log(
      `export: medsyn ${ours.export.toFixed(2)} s (${(SAMPLES / ours.export).toFixed(0)} samples/s, ${(mb / ours.export).toFixed(1)} MB/s), Python tarfile ${peer.export.toFixed(2)} s -> ${(peer.export / ours.export).toFixed(2)}x the peer's speed`,
    );
    console.log(
      `import: medsyn ${ours.import.toFixed(2)} s (${(SAMPLES / ours.import).toFixed(0)} samples/s, ${(mb / ours.import).toFixed(1)} MB/s), Python tarfile ${peer.import.toFixed(2)} s -> ${(peer.import / ours.import).toFixed(2)}x the peer's speed`,
    );
    console.log(
      `durable peer (tarfile, then os.sync()): export ${peer.durableExport.toFixed(2)} s -> ${(peer.durableExport / ours.export).toFixed(2)}x, import ${peer.durableImport.toFixed(2)} s -> ${(peer.durableImport / ours.import).toFixed(2)}x`,
    );
    console.log(
      `RESULT ${JSON.stringify({
        samples: SAMPLES,
        bundle_mb: +mb.toFixed(1),
        export_seconds: +ours.export.toFixed(3),
        import_seconds: +ours.import.toFixed(3),
        peer_export_seconds: +peer.export.toFixed(3),
        peer_import_seconds: +peer.import.toFixed(3),
        export_speed_vs_peer: +(peer.export / ours.export).toFixed(2),
        import_speed_vs_peer: +(peer.import / ours.import).toFixed(2),
        peer_durable_export_seconds: +peer.durableExport.toFixed(3),
        peer_durable_import_seconds: +peer.durableImport.toFixed(3),
        export_speed_vs_durable_peer: +(peer.durableExport / ours.export).toFixed(2),
        import_speed_vs_durable_peer: +(peer.durableImport / ours.import).toFixed(2),
        ...load.report(),
      })}`,
    );
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
