import { seededRandom, seededShuffle, shuffled, standardNormal } from '../src';

describe('seededRandom', () => {
  it('draws xorshift32 from seed ^ 0x9e3779b9, so the splits recorded with results stay reproducible', () => {
    // States computed by hand from Marsaglia's (13, 17, 5) xorshift with Python integers.
    const random = seededRandom(42);
    expect([random(), random(), random()].map((u) => u * 4294967296)).toEqual([1369506609, 1227121042, 1742610489]);
  });

  it('gives the same sequence for the same seed and another for another seed', () => {
    const draws = (seed: number) => {
      const random = seededRandom(seed);
      return Array.from({ length: 5 }, () => random());
    };
    expect(draws(7)).toEqual(draws(7));
    expect(draws(7)).not.toEqual(draws(8));
  });

  it('draws in [0, 1) with a uniform mean, even from seed 0x9e3779b9 whose state would be 0', () => {
    for (const seed of [0, 0x9e3779b9, 123456]) {
      const random = seededRandom(seed);
      const draws = Array.from({ length: 20000 }, () => random());
      expect(Math.min(...draws)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...draws)).toBeLessThan(1);
      // The mean of 20000 uniform draws has a standard deviation of 0.002.
      expect(Math.abs(draws.reduce((a, b) => a + b, 0) / draws.length - 0.5)).toBeLessThan(0.01);
    }
  });
});

describe('shuffles', () => {
  const items = Array.from({ length: 10 }, (_, i) => i);

  it('shuffled is a permutation fixed by the generator and leaves its input alone', () => {
    expect(shuffled(items, seededRandom(42))).toEqual([8, 6, 4, 1, 7, 0, 5, 9, 2, 3]);
    expect(items).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('seededShuffle gives one order per (seed, salt)', () => {
    expect(seededShuffle(items, 3, 1)).toEqual(seededShuffle(items, 3, 1));
    expect(seededShuffle(items, 3, 1)).not.toEqual(seededShuffle(items, 3, 2));
    expect(seededShuffle(items, 3, 1)).not.toEqual(seededShuffle(items, 4, 1));
    expect([...seededShuffle(items, 3, 1)].sort((a, b) => a - b)).toEqual(items);
  });
});

describe('standardNormal', () => {
  it('has mean 0 and variance 1', () => {
    const random = seededRandom(5);
    const draws = Array.from({ length: 20000 }, () => standardNormal(random));
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const variance = draws.reduce((a, b) => a + (b - mean) ** 2, 0) / draws.length;
    // Standard errors: 0.007 for the mean, 0.01 for the variance.
    expect(Math.abs(mean)).toBeLessThan(0.035);
    expect(Math.abs(variance - 1)).toBeLessThan(0.05);
  });
});
