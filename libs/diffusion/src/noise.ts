/**
 * Seeded Gaussian noise for the initial latents and ancestral steps: the same seed gives the
 * same numbers on every machine (integer arithmetic, then one float Box-Muller transform).
 * Not torch.randn's stream: a seed here does not reproduce a PyTorch image.
 */
export class SeededNoise {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare: number | undefined;

  /** `seed` is an unsigned 64-bit integer. */
  constructor(seed: bigint) {
    // sfc32 (Doty-Humphrey, PractRand-tested): adds, shifts and xors only, no Math.imul (slow in jest).
    this.a = Number(seed & 0xffffffffn) >>> 0;
    this.b = Number((seed >> 32n) & 0xffffffffn) >>> 0;
    this.c = 0x9e3779b9;
    this.d = 1;
    for (let i = 0; i < 15; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Uniform in (0, 1), never 0 (Box-Muller takes its logarithm). */
  private uniform(): number {
    return (this.nextUint32() + 0.5) / 4294967296;
  }

  standardNormal(): number {
    if (this.spare !== undefined) {
      const z = this.spare;
      this.spare = undefined;
      return z;
    }
    const radius = Math.sqrt(-2 * Math.log(this.uniform()));
    const angle = 2 * Math.PI * this.uniform();
    this.spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  }

  /** `count` draws of N(0, 1). */
  normal(count: number): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.standardNormal();
    return out;
  }
}

/** A fresh random 53-bit seed for requests that do not give one. */
export function randomSeed(): bigint {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  return (BigInt(words[0]! & 0x1fffff) << 32n) | BigInt(words[1]!);
}
