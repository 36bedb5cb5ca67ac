import { EvaluationConfigError, EVALUATION_LIMITS, parseEvaluationConfig } from '../src';

const base = {
  encoders: [{ name: 'r', baseline: { architecture: 'resnet18' as const, size: 64, seed: 1 } }],
  dataset: { format: 'csv', root: '/data' },
  tasks: ['classification' as const],
};

describe('evaluation config upper bounds', () => {
  it.each([
    [
      'encoders',
      {
        encoders: Array.from({ length: 33 }, (_, i) => ({
          name: `e${i}`,
          baseline: { architecture: 'resnet18' as const, size: 64, seed: 1 },
        })),
      },
    ],
    [
      'encoders[0].baseline.size',
      { encoders: [{ name: 'r', baseline: { architecture: 'resnet18' as const, size: 1_048_576, seed: 1 } }] },
    ],
    [
      'encoders[0].baseline.width',
      { encoders: [{ name: 'r', baseline: { architecture: 'resnet18' as const, size: 64, width: 1e6, seed: 1 } }] },
    ],
    ['label_fractions', { label_fractions: Array.from({ length: 17 }, () => 1) }],
    ['seeds', { seeds: Array.from({ length: 33 }, (_, i) => i) }],
    ['seeds[0]', { seeds: [2 ** 60] }],
    ['max_images', { max_images: 1e9 }],
    ['epochs.classification', { epochs: { classification: 1e9 } }],
    ['report_samples', { report_samples: 1e6 }],
  ])('refuses an oversized %s, naming it', (field, change) => {
    const parse = () => parseEvaluationConfig({ ...base, ...change });
    expect(parse).toThrow(EvaluationConfigError);
    expect(parse).toThrow(new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: `));
  });

  it('accepts the bounds themselves', () => {
    const config = parseEvaluationConfig({
      ...base,
      seeds: Array.from({ length: EVALUATION_LIMITS.seeds }, (_, i) => i),
      max_images: EVALUATION_LIMITS.max_images,
      epochs: { classification: EVALUATION_LIMITS.epochs },
    });
    expect(config.seeds).toHaveLength(32);
  });
});
