// npm run bench:evaluator — (1) wall time of the full frozen-encoder task suite (linear probe,
// U-Net segmentation, FCOS detection at 1/10/100 % labels) for one encoder on
// ../shared/data/covid-cxr at CPU size; (2) the linear probe on our engine against
// scikit-learn's LogisticRegression (Debian /usr/bin/python3) on the same frozen features and
// split, measured in this run: fit time ratio and AUROC agreement. Last line: RESULT {json}.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FileArtifactStore } from '@medsyn/artifact-store';
import { exportEncoderBundle, writeEncoderBundle, type EncoderSpec } from '@medsyn/encoder-bundle';
import {
  encodeImages,
  importCovidCxr,
  labelFraction,
  loadImage,
  openEncoderBundle,
  probeLoss,
  probeScores,
  rocAuc,
  runEvaluation,
  splitByPatient,
  trainLinearProbe,
  type LabelledImage,
} from '@medsyn/evaluation';
import { median, watchLoad } from './machine';

const DATA = path.resolve(__dirname, '../../shared/data/covid-cxr');
// CPU size: ResNet-18 at width 32 on 64 px inputs (the paper's 224 px / width 64 is ~25x the work).
const SPEC: EncoderSpec = { image: { architecture: 'resnet18', size: 64, width: 32 } };

async function main() {
  // The peer uses 2 BLAS threads; our probe one onnxruntime thread.
  const load = watchLoad(2);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-evaluator-'));
  try {
    await writeEncoderBundle(
      new FileArtifactStore(tmp),
      'encoder',
      exportEncoderBundle(SPEC, { method: 'random', seed: 0 }),
    );
    const bundle = path.join(tmp, 'encoder');

    // (1) The full suite, one encoder, one seed, three label fractions (classification only with --probe-only).
    const t0 = performance.now();
    const { results } = await runEvaluation(
      {
        encoders: [{ name: 'resnet18-w32-random', bundle, pretraining_data: 'random' }],
        dataset: { format: 'covid_cxr', root: DATA },
        tasks: process.argv.includes('--probe-only')
          ? ['classification']
          : ['classification', 'segmentation', 'detection'],
        label_fractions: [0.01, 0.1, 1],
        seeds: [0],
        epochs: { classification: 100, segmentation: 10, detection: 10 },
      },
      { log: (line) => console.log(`  ${line}`) },
    );
    const suiteSeconds = (performance.now() - t0) / 1000;
    const perTask = Object.fromEntries(
      ['classification', 'segmentation', 'detection'].map((t) => [
        t,
        +results.runs
          .filter((r) => r.task === t)
          .reduce((a, r) => a + r.seconds, 0)
          .toFixed(1),
      ]),
    );
    console.log(
      `suite: ${suiteSeconds.toFixed(1)} s for ${results.dataset.images} images (encoding ${results.encoders[0]!.encode_seconds.toFixed(1)} s; task seconds ${JSON.stringify(perTask)})`,
    );

    // (2) Linear probe vs LogisticRegression on the same frozen features.
    const dataset = importCovidCxr(DATA);
    const labelled = dataset.images.filter((i) => i.labels);
    const split = splitByPatient(dataset, labelled, { seed: 0 });
    const encoder = await openEncoderBundle(bundle);
    const all = [...split.train, ...split.validation, ...split.test];
    const encoded = await encodeImages(
      encoder,
      all.map((image) => ({ id: image.id, load: () => loadImage(image) })),
    );
    await encoder.release();
    const F = encoded.featureDim;
    const set = (list: LabelledImage[]) => {
      const features = new Float32Array(list.length * F);
      list.forEach((image, k) =>
        features.set(
          encoded.features.subarray(encoded.index.get(image.id)! * F, (encoded.index.get(image.id)! + 1) * F),
          k * F,
        ),
      );
      return { features, targets: Float32Array.from(list.map((i) => i.labels![0]!)), n: list.length };
    };
    const train = set(labelFraction(split.train, 1, 0));
    const validation = set(split.validation);
    const test = set(split.test);
    const peerInput = path.join(tmp, 'features.json');
    fs.writeFileSync(
      peerInput,
      JSON.stringify({
        dim: F,
        train_x: Array.from(train.features),
        train_y: Array.from(train.targets),
        test_x: Array.from(test.features),
        test_y: Array.from(test.targets),
        repeats: 1,
      }),
    );
    // Interleaved, ours then the peer, three rounds; medians. Both: L2 logistic regression, C = 1, L-BFGS with scikit-learn
    // 1.2's stopping tests (a gradient of 1e-4 on the summed objective, or a relative decrease of 2.2e-9).
    const fits: number[] = [];
    const peerFits: number[] = [];
    let auroc = NaN;
    let steps = 0;
    let iterations = 0;
    let objective = NaN;
    let peer = { fit_seconds: NaN, iterations: 0, auroc: NaN, objective: NaN };
    for (let round = 0; round < 3; round++) {
      const t1 = performance.now();
      const probe = await trainLinearProbe(train, validation, F, { kind: 'multi-label', classes: 1 });
      fits.push((performance.now() - t1) / 1000);
      auroc = rocAuc(test.targets, probeScores(probe, test.features, test.n));
      // The objective both minimise, at our solution: summed cross-entropy + ||w||^2 / 2 (C = 1).
      objective =
        probeLoss(probeScores(probe, train.features, train.n), train.targets, train.n, 1, 'multi-label') * train.n +
        probe.weight.reduce((sum, w) => sum + w * w, 0) / 2;
      ({ steps, epochsRun: iterations } = probe);
      peer = JSON.parse(
        execFileSync('/usr/bin/python3', [path.join(__dirname, 'python/evaluator_peer.py'), peerInput], {
          env: { ...process.env, OMP_NUM_THREADS: '2', OPENBLAS_NUM_THREADS: '2' },
        }).toString(),
      ) as typeof peer;
      peerFits.push(peer.fit_seconds);
    }
    const ours = median(fits);
    const sklearn = median(peerFits);
    console.log(
      `linear probe: ours ${ours.toFixed(4)} s (L-BFGS, ${iterations} iterations, ${steps} loss+gradient runs on ${train.n} x ${F}), AUROC ${auroc.toFixed(4)}, objective ${objective.toFixed(6)}`,
    );
    console.log(
      `scikit-learn LogisticRegression (lbfgs): ${sklearn.toFixed(4)} s (${peer.iterations} iterations), AUROC ${peer.auroc.toFixed(4)}, objective ${peer.objective.toFixed(6)}`,
    );
    const loadReport = load.report();
    console.log(
      `RESULT ${JSON.stringify({
        suite_seconds: +suiteSeconds.toFixed(1),
        suite_images: results.dataset.images,
        suite_encode_seconds: +results.encoders[0]!.encode_seconds.toFixed(1),
        suite_task_seconds: perTask,
        suite_metrics: Object.fromEntries(
          results.metrics
            .filter((m) => !m.metric.includes('/'))
            .map((m) => [`${m.task}/${m.label_fraction}/${m.metric}`, +m.mean.toFixed(4)]),
        ),
        probe_fit_seconds: +ours.toFixed(4),
        probe_iterations: iterations,
        probe_evaluations: steps,
        sklearn_fit_seconds: +sklearn.toFixed(4),
        probe_time_ratio_vs_sklearn: +(ours / sklearn).toFixed(2),
        probe_auroc: +auroc.toFixed(4),
        sklearn_auroc: +peer.auroc.toFixed(4),
        auroc_difference: +Math.abs(auroc - peer.auroc).toFixed(4),
        probe_objective: +objective.toFixed(6),
        sklearn_objective: +peer.objective.toFixed(6),
        objective_relative_difference: +((objective - peer.objective) / peer.objective).toExponential(1),
        ...loadReport,
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
