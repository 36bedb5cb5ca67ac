import { PretrainingConfigError, parsePretrainingConfig, parsePretrainingConfigWithoutPairs } from '../src';

describe('a pretraining config before its pairs exist', () => {
  const settings = { method: 'gloria', seed: 3, image_encoder: { architecture: 'resnet18', image_size: 64 } };

  it('is read with its defaults, without the pair manifests parsePretrainingConfig requires', () => {
    expect(() => parsePretrainingConfig(settings)).toThrow(
      new PretrainingConfigError('data.real_pairs', 'no pair manifest given (data.real_pairs or data.synthetic_pairs)'),
    );
    expect(parsePretrainingConfigWithoutPairs(settings)).toMatchObject({
      method: 'gloria',
      seed: 3,
      imageEncoder: { architecture: 'resnet18', imageSize: 64, width: 0 },
      data: { realPairs: [], syntheticPairs: [], validationFraction: 0.1 },
    });
  });

  it('still refuses what no run could do, naming the field', () => {
    expect(() =>
      parsePretrainingConfigWithoutPairs({ ...settings, text_encoder: { hidden_size: 10, heads: 4 } }),
    ).toThrow(/^text_encoder\.hidden_size: must be divisible/);
  });
});
