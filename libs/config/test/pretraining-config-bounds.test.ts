import { parsePretrainingConfig, PretrainingConfigError, PRETRAINING_LIMITS } from '../src';

const base = {
  method: 'convirt',
  data: { real_pairs: ['pairs.jsonl'] },
  image_encoder: { architecture: 'resnet18', image_size: 64 },
};

describe('pre-training config upper bounds', () => {
  it.each([
    ['batch_size', { batch_size: 1e9 }],
    ['image_encoder.image_size', { image_encoder: { architecture: 'resnet18', image_size: 1_048_576 } }],
    ['epochs', { epochs: 1e7 }],
    ['schedule.warmup_steps', { schedule: { warmup_steps: 1e8 } }],
    ['checkpoint_every_steps', { checkpoint_every_steps: 1e8 }],
    ['embedding_size', { embedding_size: 1e6 }],
    ['text_encoder.hidden_size', { text_encoder: { hidden_size: 1e6 } }],
    ['text_encoder.vocab_size', { text_encoder: { vocab_size: 1e9 } }],
    ['seed', { seed: 2 ** 60 }],
  ])('refuses an oversized %s, naming it', (field, change) => {
    const parse = () => parsePretrainingConfig({ ...base, ...change });
    expect(parse).toThrow(PretrainingConfigError);
    expect(parse).toThrow(new RegExp(`^${field.replace(/\./g, '\\.')}: must be <= `));
  });

  it('accepts every bound itself', () => {
    const config = parsePretrainingConfig({
      ...base,
      batch_size: PRETRAINING_LIMITS.batch_size,
      epochs: PRETRAINING_LIMITS.epochs,
      image_encoder: { architecture: 'resnet18', image_size: PRETRAINING_LIMITS.image_size },
    });
    expect(config).toMatchObject({ batchSize: 4096, epochs: 10_000, imageEncoder: { imageSize: 1024 } });
  });
});
