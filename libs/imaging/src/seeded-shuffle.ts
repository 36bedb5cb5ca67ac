import { seededRandom } from './augment';

/** Fisher-Yates with a seeded generator: the same (seed, salt) gives the same order. */
export function seededShuffle<T>(items: readonly T[], seed: number, salt: number): T[] {
  const random = seededRandom((seed * 1000003 + salt * 7919 + 17) >>> 0);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
