import * as ort from 'onnxruntime-node';
import { checkOnnxModel } from '@medsyn/testing';
import { GraphBuilder, ShapeError, decodeModel, encodeModel, fromTensorProto, ops, tensor } from '../src';
import { runGraph } from './helpers';

/** A two-layer perceptron with PyTorch-style parameter names. */
function mlp(): GraphBuilder {
  const g = new GraphBuilder('mlp');
  const o = ops(g);
  const x = g.input('x', 'float32', ['batch', 4]);
  const hidden = g.scope('fc1', () =>
    o.gemm(
      x,
      g.parameter('weight', tensor('float32', [3, 4], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])),
      g.parameter('bias', tensor('float32', [3], [0, 0, -10])),
      { transB: true },
    ),
  );
  const y = g.scope('fc2', () =>
    o.add(
      o.matmul(o.relu(hidden), g.parameter('weight', tensor('float32', [3, 2], [1, 2, 3, 4, 5, 6]))),
      g.parameter('bias', tensor('float32', [2], [0.5, -0.5])),
    ),
  );
  g.output(o.softmax(y, -1), 'probabilities');
  g.output(y, 'logits');
  return g;
}

describe('GraphBuilder', () => {
  it('infers shapes with symbolic sizes as nodes are added', () => {
    const g = mlp();
    expect(g.value('logits').shape).toEqual(['batch', 2]);
    expect([...g.parameters.keys()]).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
  });

  it('emits a model the ONNX reference checker accepts', () => {
    checkOnnxModel(encodeModel(mlp().toModelProto()), 'mlp');
  });

  it('runs on onnxruntime with the numbers a hand computation gives', async () => {
    const out = await runGraph(mlp(), {
      x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4, -1, -2, -3, -4]), [2, 4]),
    });
    // Row 1: hidden = relu([1, 2, 3 - 10]) = [1, 2, 0]; logits = [1*1+2*3, 1*2+2*4] + bias = [7.5, 9.5].
    expect(Array.from(out.logits!.data as Float32Array)).toEqual([7.5, 9.5, 0.5, -0.5]);
    const p = out.probabilities!.data as Float32Array;
    expect(p[0]! + p[1]!).toBeCloseTo(1, 6);
  });

  it('round-trips through protobuf bytes', () => {
    const model = decodeModel(encodeModel(mlp().toModelProto()));
    expect(model.opsetImport[0]).toMatchObject({ domain: '', version: 17 });
    const weight = fromTensorProto(model.graph!.initializer.find((t) => t.name === 'fc2.weight')!);
    expect(Array.from(weight.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses a node whose inputs do not fit, naming the node and shapes', () => {
    const g = new GraphBuilder('bad');
    const o = ops(g);
    const a = g.input('a', 'float32', [2, 3]);
    const b = g.input('b', 'float32', [4, 5]);
    expect(() => o.matmul(a, b)).toThrow(ShapeError);
    expect(() => o.matmul(a, b)).toThrow(/node MatMul.*inner dimensions differ.*a\[2, 3\], b\[4, 5\]/);
    expect(() => g.op('NoSuchOp', [a])).toThrow(/NoSuchOp: operator not supported/);
  });

  it('infers convolution and pooling shapes', () => {
    const g = new GraphBuilder('cnn');
    const o = ops(g);
    const x = g.input('x', 'float32', ['n', 3, 32, 32]);
    const w = g.parameter('w', tensor('float32', [8, 3, 3, 3]));
    const y = o.conv(x, w, undefined, { strides: [2, 2], pads: [1, 1, 1, 1] });
    expect(y.shape).toEqual(['n', 8, 16, 16]);
    expect(o.maxPool(y, { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }).shape).toEqual(['n', 8, 8, 8]);
    const dw = g.parameter('dw', tensor('float32', [8, 1, 3, 3]));
    expect(o.conv(y, dw, undefined, { group: 8, pads: [2, 2, 2, 2], dilations: [2, 2] }).shape).toEqual([
      'n',
      8,
      16,
      16,
    ]);
    expect(
      o.convTranspose(y, g.parameter('wt', tensor('float32', [8, 4, 2, 2])), undefined, { strides: [2, 2] }).shape,
    ).toEqual(['n', 4, 32, 32]);
  });
});
