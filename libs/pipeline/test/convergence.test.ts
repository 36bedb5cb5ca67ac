import { binomialTail, incomparable, pooledMetrics, pooledRatios, pretrainingArms } from '../src';

const stage = (summary: Record<string, number | string>) => ({ seconds: 1, summary });

describe('pre-training arms that did not learn are not compared', () => {
  const stages = {
    anonymize: stage({ records: 10 }),
    'pretrain convirt-real': stage({ steps: 144, retrieval_top1: 0.03, retrieval_chance: 0.043 }),
    'pretrain convirt-synthetic': stage({ steps: 144, retrieval_top1: 0.12, retrieval_chance: 0.043 }),
    'pretrain mgca-real': stage({ steps: 144, retrieval_top1: 0.152, retrieval_chance: 0.043 }),
    'pretrain mgca-synthetic': stage({ steps: 144, retrieval_top1: 0.121, retrieval_chance: 0.043 }),
    // No held-out set: nothing shows that it learned.
    'pretrain gloria-real': stage({ steps: 144, retrieval_top1: NaN, retrieval_chance: NaN }),
  };

  it('reads each arm and whether its held-out retrieval beat chance', () => {
    const arms = pretrainingArms(stages);
    expect(arms.map((a) => [a.name, a.learned])).toEqual([
      ['convirt-real', false],
      ['convirt-synthetic', true],
      ['mgca-real', true],
      ['mgca-synthetic', true],
      ['gloria-real', false],
    ]);
    expect(arms[0]).toMatchObject({ method: 'convirt', source: 'real', retrievalTop1: 0.03, retrievalChance: 0.043 });
  });

  it('says how often chance alone retrieves as many pairs (one-sided binomial tail, checked against scipy.stats.binom.sf)', () => {
    // /usr/bin/python3 -c "from scipy.stats import binom; print(binom.sf(k - 1, n, p))"
    expect(binomialTail(3, 66, 0.0202)).toBeCloseTo(0.14898714769322424, 12);
    expect(binomialTail(6, 66, 0.0202)).toBeCloseTo(0.002191043654071324, 12);
    expect(binomialTail(1, 10, 0.5)).toBeCloseTo(0.9990234375, 12);
    expect(binomialTail(40, 5000, 0.005) / 0.003365174504168054).toBeCloseTo(1, 9);
    expect(binomialTail(66, 66, 0.0202) / 1.422952435990896e-112).toBeCloseTo(1, 9);
    expect([binomialTail(0, 66, 0.02), binomialTail(67, 66, 0.02)]).toEqual([1, 0]);
    const [seeded] = pretrainingArms({
      'pretrain convirt-real-seed0': stage({ retrieval_top1: 6 / 66, retrieval_chance: 0.0202, retrieval_pairs: 66 }),
    });
    expect(seeded!.retrievalPValue).toBeCloseTo(0.002191043654071324, 12);
    // Without a held-out count there is no test.
    expect(pretrainingArms(stages)[1]!.retrievalPValue).toBeNaN();
  });

  it('refuses a ratio that involves an arm at or below chance, naming it', () => {
    const arms = pretrainingArms(stages);
    expect(incomparable(arms, 'convirt-synthetic', 'convirt-real')).toBe(
      'convirt-real retrieval 0.030 <= chance 0.043: not compared',
    );
    expect(incomparable(arms, 'mgca-synthetic', 'mgca-real')).toBeUndefined();
    expect(incomparable(arms, 'gloria-synthetic', 'gloria-real')).toBe(
      'gloria-real has no held-out retrieval: not compared',
    );
    // Exactly at chance did not learn either.
    expect(
      pretrainingArms({ 'pretrain convirt-real': stage({ retrieval_top1: 0.05, retrieval_chance: 0.05 }) })[0]!.learned,
    ).toBe(false);
  });

  it('reads the seeds of an arm, and refuses a pooled comparison when any seed of either arm is at chance', () => {
    const seeded = {
      'pretrain convirt-real-seed0': stage({ retrieval_top1: 0.2, retrieval_chance: 0.03, retrieval_pairs: 33 }),
      'pretrain convirt-real-seed1': stage({ retrieval_top1: 0.03, retrieval_chance: 0.03, retrieval_pairs: 33 }),
      'pretrain convirt-synthetic-seed0': stage({ retrieval_top1: 0.1, retrieval_chance: 0.03, retrieval_pairs: 33 }),
      'pretrain convirt-synthetic-seed1': stage({ retrieval_top1: 0.12, retrieval_chance: 0.03, retrieval_pairs: 33 }),
    };
    const arms = pretrainingArms(seeded);
    expect(arms[1]).toMatchObject({
      name: 'convirt-real-seed1',
      group: 'convirt-real',
      source: 'real',
      seed: 1,
      retrievalPairs: 33,
      learned: false,
    });
    expect(incomparable(arms, 'convirt-synthetic', 'convirt-real')).toBe(
      'convirt-real-seed1 retrieval 0.030 <= chance 0.030: not compared',
    );
    expect(incomparable(arms, 'convirt-synthetic-seed0', 'convirt-real-seed0')).toBeUndefined();
  });
});

describe('tables pool pre-training seeds and downstream seeds together', () => {
  const metric = (encoder: string, perSeed: number[]) => ({
    encoder,
    task: 'classification' as const,
    label_fraction: 1,
    metric: 'auroc_macro',
    mean: 0,
    std: 0,
    per_seed: perSeed,
  });
  const results = {
    metrics: [
      metric('convirt-real-seed0', [0.6, 0.62]),
      metric('convirt-real-seed1', [0.7, 0.72]),
      metric('convirt-synthetic-seed0', [0.66, 0.66]),
      metric('convirt-synthetic-seed1', [0.66, 0.66]),
      metric('random-init', [0.5, 0.52]),
    ],
  };

  it('gives each arm one mean and sample std over all its runs, and says how many it pooled', () => {
    const cells = pooledMetrics(results);
    const real = cells.find((c) => c.group === 'convirt-real')!;
    expect(real.n).toBe(4);
    expect(real.mean).toBeCloseTo(0.66, 12);
    // Sample std of 0.60, 0.62, 0.70, 0.72.
    expect(real.std).toBeCloseTo(Math.sqrt((0.06 ** 2 + 0.04 ** 2 + 0.04 ** 2 + 0.06 ** 2) / 3), 12);
    expect(cells.find((c) => c.group === 'random-init')!.n).toBe(2);
  });

  it('compares synthetic with real per method on the pooled means', () => {
    expect(pooledRatios(pooledMetrics(results))).toEqual([
      {
        method: 'convirt',
        task: 'classification',
        label_fraction: 1,
        metric: 'auroc_macro',
        ratio: expect.closeTo(1, 12),
      },
    ]);
  });
});
