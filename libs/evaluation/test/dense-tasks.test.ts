import * as path from 'node:path';
import { resize } from '@medsyn/imaging';
import { makeTempDir } from '@medsyn/testing';
import { encodeImages, openEncoderBundle } from '../src/encoder';
import {
  decodeDetections,
  fcosTargets,
  nonMaximumSuppression,
  trainDetection,
  trainSegmentation,
} from '../src/dense-tasks';
import { DenseHeadWorkers, oneAtATime, runDenseJob, type DenseJob } from '../src/dense-workers';
import { seededRandom } from '@medsyn/random';
import { grayImage } from '@medsyn/imaging';
import { SIZE, writeBundle } from './fixtures';

// Bright squares of random size and place on noise: the mask is the square, the box its edges.
function squares(count: number, seed: number) {
  const rand = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const image = grayImage(SIZE, SIZE);
    for (let i = 0; i < image.data.length; i++) image.data[i] = 0.3 * rand();
    const side = 10 + Math.floor(rand() * 10);
    const x0 = Math.floor(rand() * (SIZE - side));
    const y0 = Math.floor(rand() * (SIZE - side));
    const mask = new Uint8Array(SIZE * SIZE);
    for (let y = y0; y < y0 + side; y++)
      for (let x = x0; x < x0 + side; x++) {
        image.data[y * SIZE + x] = 0.9;
        mask[y * SIZE + x] = 1;
      }
    return { image, mask, boxes: [{ x: x0, y: y0, width: side, height: side, label: 0 }] };
  });
}

describe('dense tasks on a frozen encoder', () => {
  const tmp = makeTempDir('dense');
  afterAll(() => tmp.remove());
  const data = squares(48, 11);
  const rows = {
    train: Array.from({ length: 32 }, (_, i) => i),
    validation: [32, 33, 34, 35, 36, 37, 38, 39],
    test: [40, 41, 42, 43, 44, 45, 46, 47],
  };
  const encoded = (async () => {
    const encoder = await openEncoderBundle(await writeBundle(path.join(tmp.dir, 'random')));
    const out = await encodeImages(
      encoder,
      data.map((d, i) => ({ id: String(i), load: () => resize(d.image, SIZE, SIZE) })),
      { withMaps: true },
    );
    await encoder.release();
    return out;
  })();

  it('the U-Net decoder segments squares from frozen random features (Dice > 0.6), reproducibly', async () => {
    const { maps } = await encoded;
    const run = () =>
      trainSegmentation(
        maps!,
        data.map((d) => d.mask),
        SIZE,
        rows,
        { seed: 1, epochs: 12, learningRate: 3e-3 },
      );
    const result = await run();
    console.log(`segmentation Dice ${result.dice.toFixed(3)} (best epoch ${result.bestEpoch})`);
    expect(result.dice).toBeGreaterThan(0.6);
    expect((await run()).dice).toBe(result.dice);
  });

  it('the FCOS head finds squares (mAP@0.5 > 0.3)', async () => {
    const { maps } = await encoded;
    const result = await trainDetection(
      maps!,
      data.map((d) => d.boxes),
      1,
      rows,
      { seed: 1, epochs: 15, learningRate: 3e-3 },
    );
    console.log(
      `detection mAP@[.40:.75] ${result.map_40_75.toFixed(3)} mAP@0.5 ${result.map_50.toFixed(3)} (best epoch ${result.bestEpoch})`,
    );
    expect(result.map_50).toBeGreaterThan(0.3);
  });

  it('worker threads train the same heads as this thread, two at a time', async () => {
    const { maps } = await encoded;
    const options = { seed: 2, epochs: 3, intraOpThreads: 1 };
    const jobs: DenseJob[] = [
      { task: 'segmentation', maps: maps!, masks: data.map((d) => d.mask), size: SIZE, rows, options },
      { task: 'detection', maps: maps!, boxes: data.map((d) => d.boxes), classes: 1, rows, options },
    ];
    const here = [];
    for (const job of jobs) here.push((await runDenseJob(job)).result);
    const workers = new DenseHeadWorkers(2);
    try {
      const there = (await Promise.all(jobs.map((job) => workers.run(job)))).map((done) => done.result);
      expect(there).toEqual(here);
      // A job that fails comes back as its error, and the worker takes the next one.
      const bad = { ...jobs[0]!, masks: [new Uint8Array(3)] } as DenseJob;
      await expect(workers.run(bad)).rejects.toMatchObject({
        name: 'RangeError',
        message: `segmentation: mask of row 0 has 3 pixels, expected ${SIZE}x${SIZE}`,
      });
      expect((await workers.run(jobs[1]!)).result).toEqual(here[1]);
    } finally {
      await workers.close();
    }
    await expect(workers.run(jobs[0]!)).rejects.toThrow('closed');
  }, 60000);

  it('a worker that dies fails its job and the queued ones instead of leaving them waiting', async () => {
    const { maps } = await encoded;
    const job: DenseJob = {
      task: 'detection',
      maps: maps!,
      boxes: data.map((d) => d.boxes),
      classes: 1,
      rows,
      options: { seed: 2, epochs: 3, intraOpThreads: 1 },
    };
    const workers = new DenseHeadWorkers(1);
    const running = workers.run(job);
    const queued = workers.run(job);
    // What an out-of-memory kill or a native crash does to the thread.
    await (workers as unknown as { all: { terminate(): Promise<number> }[] }).all[0]!.terminate();
    await expect(running).rejects.toThrow(/a dense head worker stopped \(exit \d+\)/);
    await expect(queued).rejects.toThrow(/a dense head worker stopped/);
    await expect(workers.run(job)).rejects.toThrow(/a dense head worker stopped/);
    await workers.close();
  }, 30000);

  it('FCOS targets, decoding and NMS invert each other on a hand case', () => {
    const box = { x: 4, y: 8, width: 16, height: 8, label: 0 };
    const t = fcosTargets([box], 4, 8, 1);
    // Centres at 4, 12, 20, 28: inside x in (4, 20) -> 12 only (4 is on the edge); y in (8, 16) -> 12.
    expect(
      Array.from(t.positive)
        .map((v, i) => (v ? i : -1))
        .filter((i) => i >= 0),
    ).toEqual([5]);
    expect([0, 1, 2, 3].map((k) => t.box[k * 16 + 5])).toEqual([1, 0.5, 1, 0.5]);
    const logits = Float32Array.from(t.cls, (v) => (v ? 10 : -10));
    const ctr = new Float32Array(16).fill(10);
    const found = decodeDetections(logits, t.box, ctr, 4, 8, 1);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ x: 4, y: 8, width: 16, height: 8, label: 0 });
    const nms = nonMaximumSuppression([
      { ...box, score: 0.9 },
      { ...box, x: 5, score: 0.8 },
      { ...box, x: 40, score: 0.7 },
    ]);
    expect(nms.map((b) => b.score)).toEqual([0.9, 0.7]);
  });
});

describe('dense runs on the calling thread', () => {
  it('run one at a time: a call starts when the previous one has settled, a failed one included', async () => {
    const events: string[] = [];
    const run = oneAtATime(async (name: string, fail: boolean) => {
      events.push(`start ${name}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
      events.push(`end ${name}`);
      if (fail) throw new Error(name);
      return name;
    });
    const settled = await Promise.allSettled([run('a', false), run('b', true), run('c', false)]);
    expect(events).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });
});
