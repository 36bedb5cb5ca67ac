import { FileArtifactStore, putJsonl, type ArtifactStore } from '@medsyn/artifact-store';
import type { PairRecord } from '@medsyn/dataset';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { makeTempDir } from '@medsyn/testing';
import { WordPieceTokenizer } from '@medsyn/wordpiece';
import {
  PairBatchLoader,
  Prefetcher,
  WorkerPrefetcher,
  epochOrder,
  learningRateAt,
  liveImageBatchWorkers,
  loadPairManifests,
  splitPairs,
  tokenizeRecords,
  type BatchSource,
  type LoadedBatch,
} from '../src';

const temp = makeTempDir('vlp-data');
afterAll(() => temp.remove());
const store = new FileArtifactStore(temp.dir);

const record = (index: number, source: 'real' | 'synthetic'): PairRecord => ({
  index,
  source,
  imageKey: `${index}.png`,
  report: 'r',
  manifest: 'm',
  lineNumber: index + 1,
});

describe('paired data', () => {
  beforeAll(() => store.check());

  it('orders each epoch by seed: every pair once, another order each epoch, and the real/synthetic ratio', () => {
    const pairs = Array.from({ length: 30 }, (_, i) => record(i, i < 10 ? 'real' : 'synthetic'));
    const only = Array.from({ length: 30 }, (_, i) => record(i, 'real'));
    const e0 = epochOrder(only, 0.5, 7, 0).map((r) => r.index);
    expect([...e0].sort((a, b) => a - b)).toEqual(only.map((r) => r.index));
    expect(epochOrder(only, 0.5, 7, 0).map((r) => r.index)).toEqual(e0);
    expect(epochOrder(only, 0.5, 7, 1).map((r) => r.index)).not.toEqual(e0);
    expect(epochOrder(only, 0.5, 8, 0).map((r) => r.index)).not.toEqual(e0);
    // 10 real and 20 synthetic at ratio 0.5: 10 of each, none twice.
    const mixed = epochOrder(pairs, 0.5, 7, 0);
    expect(mixed.filter((r) => r.source === 'real')).toHaveLength(10);
    expect(mixed.filter((r) => r.source === 'synthetic')).toHaveLength(10);
    expect(new Set(mixed.map((r) => r.index)).size).toBe(20);
    expect(epochOrder(pairs, 1, 7, 0).every((r) => r.source === 'synthetic')).toBe(true);
    const { train, validation } = splitPairs(only, 0.2, 3);
    expect(validation).toHaveLength(6);
    expect(new Set([...train, ...validation].map((r) => r.index)).size).toBe(30);
  });

  it('loads batches that replay exactly from a saved position, skipping images that fail to decode', async () => {
    const loader = await tenImagesOneBroken('b');
    const first = new Prefetcher(loader(), { epoch: 0, cursor: 0 });
    const batches = [];
    for (let i = 0; i < 5; i++) batches.push(await first.next());
    // 9 good images of 10: three batches per epoch, then the next epoch.
    expect(batches.map((b) => b.next.epoch)).toEqual([0, 0, 0, 1, 1]);
    expect(
      batches
        .slice(0, 3)
        .flatMap((b) => b.records)
        .sort((a, b) => a - b),
    ).toEqual([0, 1, 2, 4, 5, 6, 7, 8, 9]);
    expect(batches.flatMap((b) => b.skipped).map((s) => s.lineNumber)).toEqual([4]);
    expect(Array.from(batches[0].feeds.word_mask.data as Float32Array).slice(0, 6)).toEqual([0, 1, 1, 0, 0, 0]);
    // A fresh loader from batch 2's position gives batches 3 and 4, pixels included.
    const resumed = new Prefetcher(loader(), batches[1].next);
    for (const expected of batches.slice(2)) {
      const got = await resumed.next();
      expect(got.records).toEqual(expected.records);
      expect(Array.from(got.feeds.pixel_values.data as Float32Array)).toEqual(
        Array.from(expected.feeds.pixel_values.data as Float32Array),
      );
    }
  });

  it('fails, rather than walk epoch after epoch, when too few of the training images decode', async () => {
    const train = Array.from({ length: 6 }, (_, i) => ({ ...record(i, 'real'), imageKey: `absent/${i}.png` }));
    const loader = new PairBatchLoader({
      store,
      train,
      tokens: { length: 4, ids: new Map(), mask: new Map() },
      image: { size: 8, channels: 1, mean: 0.5, std: 0.5 },
      batchSize: 4,
      syntheticRatio: 0.5,
      seed: 1,
      augment: false,
      specialIds: [],
    });
    await expect(loader.load({ epoch: 0, cursor: 0 })).rejects.toThrow(
      'fewer than batch_size (4) pairs remain after skipping images that fail to decode',
    );
  });

  it('a batch worker fills the same batches as the training thread, bit for bit, for the same seed', async () => {
    const loader = await tenImagesOneBroken('w');
    const expected = await take(new Prefetcher(loader(), { epoch: 0, cursor: 0 }), 7);
    // Seven batches of three: three epochs, the broken image skipped in the first.
    expect(expected.map((b) => b.next.epoch)).toEqual([0, 0, 0, 1, 1, 1, 2]);
    // From a position as well: a loader started there (either one) has not seen the images that failed
    // before it, so it reports them again when it meets them; the thread's batches from there are the reference.
    for (const start of [{ epoch: 0, cursor: 0 }, expected[1].next]) {
      const count = start.cursor === 0 ? 7 : 5;
      const thread = start.cursor === 0 ? expected : await take(new Prefetcher(loader(), start), count);
      expect(thread.map((b) => [b.records, b.next])).toEqual(expected.slice(7 - count).map((b) => [b.records, b.next]));
      const got = await take(new WorkerPrefetcher(loader(), start), count);
      got.forEach((batch, i) => expect(bytesOf(batch)).toEqual(bytesOf(thread[i])));
    }
    // A store other than a local folder is read by the training thread for the worker: same batches.
    const elsewhere = new Proxy(store, { getPrototypeOf: () => Object.prototype }) as ArtifactStore;
    const proxied = await take(
      new WorkerPrefetcher(new PairBatchLoader({ ...loader().options, store: elsewhere }), { epoch: 0, cursor: 0 }),
      7,
    );
    proxied.forEach((batch, i) => expect(bytesOf(batch)).toEqual(bytesOf(expected[i])));
    expect(liveImageBatchWorkers()).toBe(0);
  });

  it('a batch worker fills at most the prefetch depth ahead, and closing it, busy or starting, ends its thread', async () => {
    const loader = await tenImagesOneBroken('d');
    const ahead = new WorkerPrefetcher(loader(), { epoch: 0, cursor: 0 }, 2);
    await ahead.next();
    // Long enough for the worker to fill many more batches of 8 px images if it were not held back.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(ahead.buffered).toBe(2);
    await ahead.close();
    await expect(ahead.next()).rejects.toThrow(/closed|stopped/);
    // Closed while its thread is still loading its code, and while it is decoding.
    const starting = new WorkerPrefetcher(loader(), { epoch: 0, cursor: 0 });
    const busy = new WorkerPrefetcher(loader(), { epoch: 0, cursor: 0 }, 50);
    const pending = busy.next().then(() => busy.close());
    await starting.close();
    await pending;
    expect(liveImageBatchWorkers()).toBe(0);
  });

  it('warms up linearly, then decays along a cosine to the floor', () => {
    const schedule = { warmupSteps: 4, decay: 'cosine' as const, minLrRatio: 0.1 };
    expect([1, 2, 4].map((s) => learningRateAt(s, 14, 1, schedule))).toEqual([0.25, 0.5, 1]);
    expect(learningRateAt(5, 14, 1, schedule)).toBeCloseTo(1, 12);
    expect(learningRateAt(14, 14, 1, schedule)).toBeCloseTo(0.1, 12);
    expect(learningRateAt(9.5, 14, 1, schedule)).toBeCloseTo(0.55, 12);
    expect(learningRateAt(9, 14, 1, { ...schedule, decay: 'constant' })).toBe(1);
  });
});

/** Ten 8 px images under `folder`, the fourth broken; a loader factory for batches of three, augmented, seed 1. */
async function tenImagesOneBroken(folder: string): Promise<() => PairBatchLoader> {
  const lines = [];
  for (let i = 0; i < 10; i++) {
    await store.put(
      `${folder}/${i}.png`,
      i === 3
        ? Buffer.from('broken')
        : encodeGrayPng(
            grayImage(
              8,
              8,
              new Float32Array(64).map((_, k) => ((i + k) % 10) / 10),
            ),
          ),
    );
    lines.push({ image: `${i}.png`, report: `finding ${i}` });
  }
  await putJsonl(store, `${folder}/pairs.jsonl`, lines);
  const { records } = await loadPairManifests(store, { real: [`${folder}/pairs.jsonl`], synthetic: [] });
  const tokenizer = WordPieceTokenizer.train(
    records.map((r) => r.report),
    { vocabSize: 40, maxLength: 6 },
  );
  const { kept, tokens } = await tokenizeRecords(tokenizer, records, []);
  return () =>
    new PairBatchLoader({
      store,
      train: kept,
      tokens,
      image: { size: 8, channels: 1, mean: 0.5, std: 0.5 },
      batchSize: 3,
      syntheticRatio: 0.5,
      seed: 1,
      augment: true,
      specialIds: [2, 3],
    });
}

async function take(source: BatchSource, count: number): Promise<LoadedBatch[]> {
  const batches: LoadedBatch[] = [];
  try {
    for (let i = 0; i < count; i++) batches.push(await source.next());
  } finally {
    await source.close();
  }
  return batches;
}

/** Everything a batch is, with each feed as its raw bytes (so -0 and NaN payloads count too). */
function bytesOf(batch: LoadedBatch) {
  const feeds = Object.fromEntries(
    Object.entries(batch.feeds).map(([name, t]) => {
      const data = t.data as Float32Array;
      return [
        name,
        { dims: t.dims, type: t.type, hex: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('hex') },
      ];
    }),
  );
  return { records: batch.records, next: batch.next, skipped: batch.skipped, feeds };
}
