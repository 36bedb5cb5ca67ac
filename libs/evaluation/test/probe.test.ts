import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { seededRandom } from '@medsyn/random';
import { makeTempDir } from '@medsyn/testing';
import { encodeImages, openEncoderBundle } from '../src/encoder';
import { rocAuc } from '../src/metrics';
import { probeLoss, probeScores, trainLinearProbe, type ProbeSet } from '../src/linear-probe';
import { separableImages, writeBundle, writeTrainedBundle } from './fixtures';

async function probeAuroc(bundleDir: string): Promise<number> {
  const encoder = await openEncoderBundle(bundleDir);
  const data = separableImages(96, 5);
  const encoded = await encodeImages(
    encoder,
    data.images.map((im, i) => ({ id: String(i), load: () => im })),
  );
  await encoder.release();
  const dim = encoded.featureDim;
  const set = (from: number, to: number): ProbeSet => ({
    features: encoded.features.slice(from * dim, to * dim),
    targets: Float32Array.from(data.labels.slice(from, to)),
    n: to - from,
  });
  const probe = await trainLinearProbe(set(0, 48), set(48, 64), dim, { kind: 'multi-label', classes: 1, epochs: 60 });
  const test = set(64, 96);
  return rocAuc(test.targets, probeScores(probe, test.features, test.n));
}

describe('linear probe on a frozen encoder', () => {
  it('an encoder trained on a separable fixture beats a random one; the same fit gives the same number', async () => {
    const dir = makeTempDir('probe');
    const trained = await writeTrainedBundle(path.join(dir.dir, 'trained'));
    const random = await writeBundle(path.join(dir.dir, 'random'));
    const a = await probeAuroc(trained);
    const b = await probeAuroc(random);
    console.log(`probe AUROC trained ${a.toFixed(3)} random ${b.toFixed(3)}`);
    expect(a).toBeGreaterThan(0.9);
    expect(a).toBeGreaterThan(b + 0.1);
    expect(await probeAuroc(trained)).toBe(a);
  });
});

describe('linear probe against scikit-learn', () => {
  // Features with a linear signal plus noise; labels drawn from a logistic model so the optimum is finite.
  function problem(kind: 'multi-label' | 'multi-class', classes: number, n: number, dim: number, seed: number) {
    const rand = seededRandom(seed);
    const x = Float32Array.from({ length: n * dim }, () => 3 * rand() + 2);
    const w = Array.from({ length: classes * dim }, () => rand() - 0.5);
    const y = new Float32Array(n * classes);
    for (let i = 0; i < n; i++) {
      const z = Array.from({ length: classes }, (_, c) =>
        w.slice(c * dim, (c + 1) * dim).reduce((a, v, d) => a + v * (x[i * dim + d]! - 3.5), 0),
      );
      if (kind === 'multi-label') z.forEach((v, c) => (y[i * classes + c] = rand() < 1 / (1 + Math.exp(-v)) ? 1 : 0));
      else {
        const noisy = z.map((v) => v + 2 * rand());
        y[i * classes + noisy.indexOf(Math.max(...noisy))] = 1;
      }
    }
    return { features: x, targets: y, n };
  }

  it.each([
    ['binary', 'multi-label', 1, 1],
    ['multi-label, 3 classes, C 0.1', 'multi-label', 3, 0.1],
    ['multinomial, 4 classes', 'multi-class', 4, 1],
  ] as const)(
    '%s: the same minimum, coefficients and probabilities as LogisticRegression',
    async (_name, kind, classes, C) => {
      const dim = 12;
      const train: ProbeSet = problem(kind, classes, 300, dim, 11);
      const test: ProbeSet = problem(kind, classes, 100, dim, 12);
      const probe = await trainLinearProbe(
        train,
        { features: new Float32Array(0), targets: new Float32Array(0), n: 0 },
        dim,
        { kind, classes, C },
      );
      const request = {
        x: Array.from(train.features),
        y: Array.from(train.targets),
        test_x: Array.from(test.features),
        dim,
        classes,
        kind,
        C,
      };
      const reference = JSON.parse(
        execFileSync('/usr/bin/python3', [path.join(__dirname, 'python/logistic_reference.py')], {
          input: JSON.stringify(request),
        }).toString(),
      ) as { coef: number[][]; intercept: number[]; proba: number[][]; objective: number };
      // The reference is fitted to a gradient of 1e-8: its objective is the minimum. Ours, with
      // scikit-learn's default stopping tests on a float32 objective, reaches it to 1e-6.
      const objective =
        probeLoss(probeScores(probe, train.features, train.n), train.targets, train.n, classes, kind) *
          train.n *
          (kind === 'multi-label' ? classes : 1) +
        probe.weight.reduce((sum, w) => sum + w * w, 0) / (2 * C);
      expect(Math.abs(objective - reference.objective)).toBeLessThan(1e-6 * reference.objective);
      const ours = probeScores(probe, test.features, test.n);
      let worst = 0;
      reference.proba.forEach((row, i) =>
        row.forEach((p, c) => (worst = Math.max(worst, Math.abs(p - ours[i * classes + c]!)))),
      );
      expect(worst).toBeLessThan(2e-4);
      reference.coef.forEach((row, c) =>
        row.forEach((v, d) =>
          expect(Math.abs(v - probe.weight[c * dim + d]!)).toBeLessThan(0.02 * Math.max(1, Math.abs(v))),
        ),
      );
      expect(probe.epochsRun).toBeLessThan(1000);
    },
  );
});
