import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { makeTempDir } from '@medsyn/testing';
import {
  GraphBuilder,
  convertToFloat16,
  decodeModel,
  encodeModel,
  fromFloat16Bits,
  ops,
  saveModel,
  tensor,
  toFloat16Bits,
} from '../src';
import { runGraph } from './helpers';

/** x [1, 2, 4, 4] -> conv (a 2 KB weight), nearest 2x upsampling, + a sinusoidal embedding of t. */
function model(): GraphBuilder {
  const g = new GraphBuilder('small');
  const o = ops(g);
  const x = g.input('x', 'float32', [1, 2, 4, 4]);
  const t = g.input('t', 'int64', [1]);
  const weight = g.parameter(
    'conv.weight',
    tensor(
      'float32',
      [16, 2, 4, 4],
      Array.from({ length: 512 }, (_, i) => Math.sin(i) / 8),
    ),
  );
  const conv = o.conv(x, weight, undefined, { pads: [2, 2, 1, 1] });
  const angles = o.mul(o.cast(t, 'float32'), o.const('float32', [1], [0.731]));
  const up = o.resize(conv, [1, 1, 2, 2], 'nearest');
  g.output(o.add(up, o.add(g.op('Cos', [angles]), g.op('Sin', [angles]))), 'y');
  return g;
}

const feeds = (dtype: 'float32' | 'float16') => {
  const x = Float32Array.from({ length: 32 }, (_, i) => Math.cos(i * 0.3));
  return {
    x:
      dtype === 'float32'
        ? new ort.Tensor('float32', x, [1, 2, 4, 4])
        : new ort.Tensor('float16', toFloat16Bits(x), [1, 2, 4, 4]),
    t: new ort.Tensor('int64', BigInt64Array.from([937n]), [1]),
  };
};

describe('saveModel with external data', () => {
  const tmp = makeTempDir('external-data');
  afterAll(() => tmp.remove());

  it('moves weights of at least the threshold to the data file and onnxruntime loads the same model from its path', async () => {
    const g = model();
    const file = path.join(tmp.dir, 'small', 'model.onnx');
    const written = saveModel(file, g.toModelProto({ shareTensorData: true }), {
      location: 'model.onnx_data',
      threshold: 1024,
    });
    expect(written).toBe(2048);
    expect(fs.statSync(path.join(tmp.dir, 'small', 'model.onnx_data')).size).toBe(2048);
    const stored = decodeModel(fs.readFileSync(file)).graph!.initializer.find((t) => t.name === 'conv.weight')!;
    expect(stored.externalData.map((e) => [e.key, e.value])).toEqual([
      ['location', 'model.onnx_data'],
      ['offset', '0'],
      ['length', '2048'],
    ]);

    const session = await ort.InferenceSession.create(file);
    const fromFile = (await session.run(feeds('float32'))).y!.data as Float32Array;
    await session.release();
    expect(Array.from(fromFile)).toEqual(Array.from((await runGraph(g, feeds('float32'))).y!.data as Float32Array));
  });
});

describe('convertToFloat16', () => {
  it('computes in float16 with float16 inputs and outputs, the sinusoid in float32, close to the float32 model', async () => {
    const g = model();
    const half = convertToFloat16(g.toModelProto());
    const session = await ort.InferenceSession.create(encodeModel(half));
    const y = (await session.run(feeds('float16'))).y!;
    await session.release();
    expect(y.type).toBe('float16');
    const reference = (await runGraph(g, feeds('float32'))).y!.data as Float32Array;
    const got = fromFloat16Bits(y.data as Uint16Array);
    // cos + sin of 937 x 0.731 rad: in float16 the angle alone would be off by up to 0.25 rad.
    got.forEach((v, i) => expect(Math.abs(v - reference[i]!)).toBeLessThan(5e-3));
  });
});
