import { parseEvaluationConfig } from '@medsyn/config';
import { meanStd, renderReport, type EvaluationResults } from '../src';

describe('meanStd', () => {
  it('gives the sample standard deviation (n - 1), 0 for one value and NaN for none', () => {
    expect(meanStd([1, 2, 3, 4])).toEqual({ mean: 2.5, std: Math.sqrt(5 / 3) });
    expect(meanStd([7])).toEqual({ mean: 7, std: 0 });
    expect(meanStd([])).toEqual({ mean: NaN, std: NaN });
  });
});

describe('renderReport', () => {
  const results: EvaluationResults = {
    format: 'medsyn.evaluation-results/v1',
    created: '2026-01-01T00:00:00.000Z',
    config: parseEvaluationConfig({
      encoders: [{ name: '<b>x</b>', bundle: 'b' }],
      dataset: { format: 'csv', root: '/data' },
      tasks: ['classification'],
      seeds: [0],
      label_fractions: [1],
    }),
    dataset: { name: 'toy', format: 'csv', kind: 'multi-label', classes: ['a'], images: 4, sha256: 'f'.repeat(64) },
    encoders: [
      {
        name: '<b>x</b>',
        pretraining_data: 'real',
        method: 'convirt',
        architecture: 'resnet18',
        input_size: 64,
        digests: {},
        encode_seconds: 1,
      },
    ],
    metrics: [
      {
        encoder: '<b>x</b>',
        task: 'classification',
        label_fraction: 1,
        metric: 'auroc_macro',
        mean: 0.75,
        std: 0,
        per_seed: [0.75],
      },
    ],
    ratios: [],
    runs: [],
    skipped: [],
    splits: {},
    roc: {},
    grids: {},
    samples: {},
    seconds: 1,
  };

  it('writes each metric as mean ± std and escapes names (a name is user input)', () => {
    const html = renderReport(results);
    expect(html).toContain('0.750 ± 0.000');
    expect(html).toContain('&lt;b&gt;x&lt;/b&gt;');
    expect(html).not.toContain('<b>x</b>');
  });
});
