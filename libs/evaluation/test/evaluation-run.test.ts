import * as fs from 'node:fs';
import * as path from 'node:path';
import { itWithSharedData, makeTempDir, sharedDataDir } from '@medsyn/testing';
import { WordPieceTokenizer } from '@medsyn/wordpiece';
import { EvaluationConfigError, parseEvaluationConfig } from '@medsyn/config';
import { renderReport } from '@medsyn/evaluation-report';
import { runEvaluation, writeEvaluationOutput } from '../src/evaluation-run';
import { encodeImages, openEncoderBundle } from '../src/encoder';
import { rocAuc } from '../src/metrics';
import { zeroShotScores } from '../src/zero-shot';
import { SIZE, TINY, separableImages, writeBundle, writeCsvDataset, writeTrainedBundle } from './fixtures';

const COVID_CXR = path.join(sharedDataDir, 'covid-cxr');

describe('comparison runner', () => {
  const tmp = makeTempDir('comparison');
  afterAll(() => tmp.remove());
  const bundles = (async () => ({
    trained: await writeTrainedBundle(path.join(tmp.dir, 'trained')),
    random: await writeBundle(path.join(tmp.dir, 'random'), { seed: 3 }),
  }))();

  it('runs encoders x fractions x seeds, reports mean ± std and the synthetic/real ratio, reproducibly', async () => {
    const { trained, random } = await bundles;
    const data = writeCsvDataset(path.join(tmp.dir, 'csv'), 60, 9);
    const config = {
      encoders: [
        { name: 'trained', bundle: trained, pretraining_data: 'real' },
        { name: 'random', bundle: random, pretraining_data: 'synthetic' },
      ],
      dataset: {
        format: 'csv',
        root: data,
        options: { label_columns: 'positive', images: 'images', patient_column: 'patient' },
      },
      tasks: ['classification'],
      label_fractions: [0.5, 1],
      seeds: [0, 1],
      epochs: { classification: 40 },
      sample_grids: { 'fixture images': path.join(data, 'images') },
    };
    const progress: string[] = [];
    const output = await runEvaluation(config, { onProgress: (p) => progress.push(`${p.completed}/${p.total}`) });
    const { results } = output;
    const auroc = (encoder: string, fraction: number) =>
      results.metrics.find(
        (m) => m.encoder === encoder && m.label_fraction === fraction && m.metric === 'auroc_macro',
      )!;
    expect(auroc('trained', 1).per_seed).toHaveLength(2);
    expect(auroc('trained', 1).mean).toBeGreaterThan(auroc('random', 1).mean);
    expect(results.ratios.find((r) => r.metric === 'auroc_macro' && r.label_fraction === 1)!.ratio).toBeCloseTo(
      auroc('random', 1).mean / auroc('trained', 1).mean,
      12,
    );
    expect(progress.at(-1)).toBe('8/8');
    expect(results.encoders[0]!.digests['image_encoder.onnx']).toMatch(/^[0-9a-f]{64}$/);
    const again = await runEvaluation(config);
    expect(again.results.metrics).toEqual(results.metrics);
    expect(again.splits).toEqual(output.splits);
    const files = writeEvaluationOutput(path.join(tmp.dir, 'out'), output, renderReport(results));
    const html = fs.readFileSync(files['report.html']!, 'utf8');
    expect(html).toContain('<polyline');
    expect(results.grids['fixture images']).toHaveLength(8);
    expect(html).toContain('<h4>fixture images</h4>');
    expect(html).not.toMatch(/(src|href)="(?!data:|#)/);
    const splits = JSON.parse(fs.readFileSync(files['splits.json']!, 'utf8'));
    expect(splits.classification.label_fractions['0.5']['1'].length).toBeLessThan(splits.classification.train.length);
  });

  itWithSharedData(
    'segmentation and detection on covid-cxr lung masks and boxes, with samples in the report',
    async () => {
      const { random } = await bundles;
      const { results } = await runEvaluation({
        encoders: [{ name: 'random', bundle: random, pretraining_data: 'random' }],
        dataset: { format: 'covid_cxr', root: COVID_CXR },
        tasks: ['segmentation', 'detection'],
        label_fractions: [1],
        seeds: [0],
        max_images: 80,
        epochs: { segmentation: 10, detection: 6 },
        report_samples: 2,
      });
      const dice = results.metrics.find((m) => m.metric === 'dice')!;
      expect(dice.mean).toBeGreaterThan(0.3);
      expect(results.metrics.find((m) => m.metric === 'map_40_75')!.mean).toBeGreaterThanOrEqual(0);
      expect(results.samples.random!.segmentation).toHaveLength(2);
      expect(results.samples.random!.detection![0]!.truthBoxes!.length).toBe(2);
      const html = renderReport(results);
      expect(html.match(/data:image\/png;base64,/g)!.length).toBeGreaterThanOrEqual(6);
    },
  );

  it('bad inputs: config fields, an encoder whose output disagrees with encoder.json, empty label column', async () => {
    expect(() => parseEvaluationConfig({ encoders: [], dataset: {}, tasks: [] })).toThrow(
      new EvaluationConfigError('encoders', 'at least one encoder is required'),
    );
    expect(() =>
      parseEvaluationConfig({
        encoders: [{ name: 'a', bundle: 'x' }],
        dataset: { format: 'csv', root: '.' },
        tasks: ['captioning'],
      }),
    ).toThrow(/tasks\[0\]: unknown task "captioning"/);
    expect(() =>
      parseEvaluationConfig({
        encoders: [{ name: 'a', bundle: 'x' }],
        dataset: { format: 'csv', root: '.' },
        tasks: ['classification'],
        label_fractions: [2],
      }),
    ).toThrow(/label_fractions\[0\]/);
    const { random } = await bundles;
    const broken = path.join(tmp.dir, 'broken');
    fs.cpSync(random, broken, { recursive: true });
    const manifest = JSON.parse(fs.readFileSync(path.join(broken, 'encoder.json'), 'utf8'));
    manifest.image.features.dim = 99;
    fs.writeFileSync(path.join(broken, 'encoder.json'), JSON.stringify(manifest));
    await expect(openEncoderBundle(broken)).rejects.toThrow(/image_features/);
    const data = writeCsvDataset(path.join(tmp.dir, 'csv-empty'), 4, 1);
    fs.writeFileSync(path.join(data, 'labels.csv'), 'image,positive\nimg0.png,\n');
    await expect(
      runEvaluation({
        encoders: [{ name: 'r', bundle: random }],
        dataset: { format: 'csv', root: data, options: { label_columns: 'positive', images: 'images' } },
        tasks: ['classification'],
      }),
    ).rejects.toThrow(/row 2: column "positive" is not a number/);
  });
});

describe('zero-shot', () => {
  const tmp = makeTempDir('zero-shot');
  afterAll(() => tmp.remove());

  it('scores are p(positive prompt); swapping the prompts mirrors them and the AUROC', async () => {
    const tokenizer = WordPieceTokenizer.train(
      ['no pneumonia', 'pneumonia in the left lung', 'no effusion', 'small effusion'],
      { vocabSize: 60, maxLength: 12 },
    );
    const vocabTxt = tokenizer.vocabTxt();
    const spec = {
      ...TINY,
      embeddingDim: 16,
      text: {
        architecture: 'bert' as const,
        bert: {
          vocabSize: vocabTxt.trim().split('\n').length,
          hidden: 16,
          layers: 1,
          heads: 2,
          intermediate: 32,
          maxLength: 12,
        },
      },
    };
    const encoder = await openEncoderBundle(await writeBundle(path.join(tmp.dir, 'clip'), { spec, vocabTxt, seed: 2 }));
    const data = separableImages(20, 4);
    const encoded = await encodeImages(
      encoder,
      data.images.map((im, i) => ({ id: String(i), load: () => im })),
    );
    const classes = ['Pneumonia'];
    const scores = await zeroShotScores(encoder, encoded.embeddings!, 20, classes);
    const swapped = await zeroShotScores(encoder, encoded.embeddings!, 20, classes, {
      Pneumonia: { positive: 'no pneumonia', negative: 'pneumonia' },
    });
    scores.forEach((s, i) => expect(s + swapped[i]!).toBeCloseTo(1, 6));
    // A random encoder's scores are close together, so float32 rounding can tie a pair on one
    // side and not on the other: the mirrored AUROCs agree to a tie's weight, not exactly.
    expect(Math.abs(rocAuc(data.labels, scores) + rocAuc(data.labels, swapped) - 1)).toBeLessThan(0.02);
    await encoder.release();
    // Through the runner: the text bundle gets a zero-shot row, an image-only baseline is skipped.
    const { results } = await runEvaluation({
      encoders: [
        { name: 'clip', bundle: path.join(tmp.dir, 'clip') },
        { name: 'baseline', baseline: { architecture: 'resnet18', size: 32, width: 4 } },
      ],
      dataset: {
        format: 'csv',
        root: writeCsvDataset(path.join(tmp.dir, 'csv'), 24, 2),
        options: { label_columns: 'positive', images: 'images' },
      },
      tasks: ['zero_shot'],
      seeds: [0, 1],
    });
    expect(results.metrics.find((m) => m.encoder === 'clip' && m.metric === 'auroc_macro')!.per_seed).toHaveLength(2);
    expect(results.skipped).toEqual([
      { encoder: 'baseline', task: 'zero_shot', reason: 'encoder "baseline" has no text encoder' },
    ]);
    const imageOnly = await openEncoderBundle(await writeBundle(path.join(tmp.dir, 'image-only')));
    await expect(zeroShotScores(imageOnly, new Float32Array(32), 1, classes)).rejects.toThrow(
      /needs an image embedding/,
    );
    await imageOnly.release();
    expect(SIZE).toBe(32);
  });
});
