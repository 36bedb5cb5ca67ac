import { incomparable, pretrainingArms } from '../src';

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

  it('refuses a ratio that involves an arm at or below chance, naming it', () => {
    const arms = pretrainingArms(stages);
    expect(incomparable(arms, 'convirt-synthetic', 'convirt-real')).toBe('convirt-real retrieval 0.030 <= chance 0.043: not compared');
    expect(incomparable(arms, 'mgca-synthetic', 'mgca-real')).toBeUndefined();
    expect(incomparable(arms, 'gloria-synthetic', 'gloria-real')).toBe('gloria-real has no held-out retrieval: not compared');
    // Exactly at chance did not learn either.
    expect(pretrainingArms({ 'pretrain convirt-real': stage({ retrieval_top1: 0.05, retrieval_chance: 0.05 }) })[0]!.learned).toBe(false);
  });
});
