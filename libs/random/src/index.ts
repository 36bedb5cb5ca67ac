/** A source of uniform numbers in [0, 1); whatever draws takes one, so a seed fixes every draw. */
export type Random = () => number;

/**
 * The one seeded generator of medsyn: xorshift32 (Marsaglia 2003), shifts and xors only (Math.imul
 * is ~50x slower inside jest's vm contexts). Same seed, same sequence on every platform. The
 * evaluation splits recorded next to every result are drawn from it, so changing it or its seeding
 * changes every split; services/pretrainer-torch/medsyn_pretrainer_torch/data.py transcribes it.
 * Nearby seeds give related first draws: derive seeds by multiplying by a large odd number, as
 * seededShuffle does, rather than by counting. Not for cryptography.
 */
export function seededRandom(seed: number): Random {
  let state = ((seed >>> 0) ^ 0x9e3779b9) >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}

/** A shuffled copy (Fisher-Yates) drawing from `random`. */
export function shuffled<T>(items: readonly T[], random: Random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A shuffled copy fixed by (seed, salt): one run seed gives independent orders, one per salt (a hold-out, each epoch). */
export function seededShuffle<T>(items: readonly T[], seed: number, salt: number): T[] {
  return shuffled(items, seededRandom((seed * 1000003 + salt * 7919 + 17) >>> 0));
}

/** A draw of N(0, 1) (Box-Muller, from two uniform draws; 1 - u keeps the logarithm finite). */
export function standardNormal(random: Random): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
