import * as path from 'node:path';
import { makeTempDir } from '@medsyn/testing';
import { encodeImages, openEncoderBundle } from '../src/encoder';
import { rocAuc } from '../src/metrics';
import { probeScores, trainLinearProbe, type ProbeSet } from '../src/linear-probe';
import { separableImages, writeBundle, writeTrainedBundle } from './fixtures';

async function probeAuroc(bundleDir: string, seed: number): Promise<number> {
  const encoder = await openEncoderBundle(bundleDir);
  const data = separableImages(96, 5);
  const encoded = await encodeImages(encoder, data.images.map((im, i) => ({ id: String(i), load: () => im })));
  await encoder.release();
  const dim = encoded.featureDim;
  const set = (from: number, to: number): ProbeSet => ({
    features: encoded.features.slice(from * dim, to * dim),
    targets: Float32Array.from(data.labels.slice(from, to)),
    n: to - from,
  });
  const probe = await trainLinearProbe(set(0, 48), set(48, 64), dim, { kind: 'multi-label', classes: 1, seed, epochs: 60 });
  const test = set(64, 96);
  return rocAuc(test.targets, probeScores(probe, test.features, test.n));
}

describe('linear probe on a frozen encoder', () => {
  it('an encoder trained on a separable fixture beats a random one; same seed, same number', async () => {
    const dir = makeTempDir('probe');
    const trained = await writeTrainedBundle(path.join(dir.dir, 'trained'));
    const random = await writeBundle(path.join(dir.dir, 'random'));
    const a = await probeAuroc(trained, 1);
    const b = await probeAuroc(random, 1);
    console.log(`probe AUROC trained ${a.toFixed(3)} random ${b.toFixed(3)}`);
    expect(a).toBeGreaterThan(0.9);
    expect(a).toBeGreaterThan(b + 0.1);
    expect(await probeAuroc(trained, 1)).toBe(a);
  });
});
