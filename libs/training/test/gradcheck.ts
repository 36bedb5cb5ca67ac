import * as ort from 'onnxruntime-node';
import { GraphBuilder, encodeModel, ops, tensor, type DType, type Value } from '@medsyn/onnx-graph';
import { seededRandom } from '@medsyn/random';
import { gradients } from '../src';

export interface GradCase {
  /** Float inputs to differentiate: name -> static shape. */
  inputs: Record<string, number[]>;
  /** Builds the function under test from the inputs. */
  build: (g: GraphBuilder, x: Record<string, Value>) => Value;
  dtype?: DType;
  /** Draws input values (default uniform in [-1, 1]); keep away from kinks such as Relu's 0. */
  sample?: (name: string, rand: () => number) => number;
  /** Extra integer inputs (e.g. indices) as constants are built inside build(). */
  seed?: number;
}

export interface GradCheckResult {
  maxAbsError: number;
  maxRelError: number;
  analytic: Record<string, Float64Array>;
  numeric: Record<string, Float64Array>;
}

const MAX_ELEMENTS_CHECKED = 48;

/**
 * Compares autodiff's gradient of sum(f(x) * r), for a fixed random r, with central finite
 * differences. In float64 a step of 1e-4 leaves a truncation error ~1e-8. In float32 (for kernels
 * onnxruntime has only in float32) rounding needs a larger step, so two steps are combined by
 * Richardson extrapolation, (4 D(h/2) - D(h)) / 3, which cancels the h^2 error term.
 */
export async function gradCheck(spec: GradCase): Promise<GradCheckResult> {
  const dtype = spec.dtype ?? 'float64';
  const rand = seededRandom(spec.seed ?? 7);
  const g = new GraphBuilder('gradcheck');
  const o = ops(g);
  const x: Record<string, Value> = {};
  for (const [name, shape] of Object.entries(spec.inputs)) x[name] = g.input(name, dtype, shape);
  const y = spec.build(g, x);
  const weights = Array.from({ length: (y.shape as number[]).reduce((a, b) => a * b, 1) }, () => rand() * 2 - 1);
  const loss = o.reduceSum(o.mul(o.cast(y, dtype), o.const(dtype, y.shape as number[], weights)), [], false);
  g.output(loss, 'loss');
  const grads = gradients(g, loss, Object.values(x));
  for (const [name, grad] of grads) g.output(grad, `d_${name}`);

  const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()));
  const values: Record<string, Float64Array | Float32Array> = {};
  for (const [name, shape] of Object.entries(spec.inputs)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const draws = Array.from({ length: n }, () => (spec.sample ? spec.sample(name, rand) : rand() * 2 - 1));
    values[name] = dtype === 'float64' ? Float64Array.from(draws) : Float32Array.from(draws);
  }
  const feeds = () =>
    Object.fromEntries(
      Object.entries(spec.inputs).map(([name, shape]) => [
        name,
        new ort.Tensor(dtype as 'float32', values[name]!, shape),
      ]),
    );
  const out = await session.run(feeds());
  const analytic: Record<string, Float64Array> = {};
  for (const name of Object.keys(spec.inputs))
    analytic[name] = Float64Array.from(out[`d_${name}`]!.data as Float64Array);

  const step = dtype === 'float64' ? 1e-4 : 2e-2;
  const lossAt = async (v: Float64Array | Float32Array, i: number, value: number) => {
    const original = v[i]!;
    v[i] = value;
    const result = Number((await session.run(feeds(), ['loss'])).loss!.data[0]);
    v[i] = original;
    return result;
  };
  const central = async (v: Float64Array | Float32Array, i: number, h: number) =>
    ((await lossAt(v, i, v[i]! + h)) - (await lossAt(v, i, v[i]! - h))) / (2 * h);
  const numeric: Record<string, Float64Array> = {};
  let maxAbsError = 0;
  let maxRelError = 0;
  for (const name of Object.keys(spec.inputs)) {
    const v = values[name]!;
    numeric[name] = new Float64Array(v.length).fill(NaN);
    const stride = Math.max(1, Math.floor(v.length / MAX_ELEMENTS_CHECKED));
    for (let i = 0; i < v.length; i += stride) {
      const fd =
        dtype === 'float64'
          ? await central(v, i, step)
          : (4 * (await central(v, i, step / 2)) - (await central(v, i, step))) / 3;
      numeric[name]![i] = fd;
      const err = Math.abs(fd - analytic[name]![i]!);
      maxAbsError = Math.max(maxAbsError, err);
      maxRelError = Math.max(maxRelError, err / Math.max(1, Math.abs(fd)));
    }
  }
  await session.release();
  return { maxAbsError, maxRelError, analytic, numeric };
}

export { tensor };
