import * as ort from 'onnxruntime-node';
import { GraphBuilder, encodeModel, ops } from '../src';

async function masks(seed: number, site: number, rate: number, n = 20000): Promise<Float32Array> {
  const g = new GraphBuilder('dropout');
  const o = ops(g);
  const x = g.input('x', 'float32', ['n']);
  g.output(o.dropout(x, rate, g.input('seed', 'int64', []), site), 'y');
  const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()));
  const out = await session.run({
    x: new ort.Tensor('float32', new Float32Array(n).fill(1), [n]),
    seed: new ort.Tensor('int64', BigInt64Array.of(BigInt(seed)), []),
  });
  await session.release();
  return out.y!.data as Float32Array;
}

describe('seeded dropout', () => {
  it('keeps about 1 - rate of the elements, scaled by 1 / (1 - rate)', async () => {
    const y = await masks(1, 0, 0.3);
    const kept = y.filter((v) => v > 0);
    expect(Math.abs(kept.length / y.length - 0.7)).toBeLessThan(0.02);
    expect(kept[0]).toBeCloseTo(1 / 0.7, 5);
  });

  it('draws the same mask for the same seed and site, other masks otherwise', async () => {
    const a = await masks(7, 1, 0.5);
    expect(Array.from(await masks(7, 1, 0.5))).toEqual(Array.from(a));
    const agreement = (b: Float32Array) => b.filter((v, i) => v > 0 === a[i]! > 0).length / a.length;
    expect(agreement(await masks(8, 1, 0.5))).toBeLessThan(0.55);
    expect(agreement(await masks(7, 2, 0.5))).toBeLessThan(0.55);
  });

  it('shows no structure between neighbouring elements', async () => {
    const y = await masks(3, 0, 0.5);
    let same = 0;
    for (let i = 1; i < y.length; i++) same += y[i]! > 0 === y[i - 1]! > 0 ? 1 : 0;
    expect(Math.abs(same / (y.length - 1) - 0.5)).toBeLessThan(0.02);
  });
});
