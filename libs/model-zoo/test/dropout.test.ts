import * as ort from 'onnxruntime-node';
import { GraphBuilder, ops, type Value } from '@medsyn/onnx-graph';
import { Trainer, buildTrainingStep, exportInferenceModel } from '@medsyn/training';
import { bert, modelBuilder } from '../src';

const CONFIG = {
  vocabSize: 50,
  hidden: 16,
  layers: 1,
  heads: 2,
  intermediate: 32,
  maxLength: 8,
  maxPositions: 8,
  classes: 2,
  dropout: 0.1,
};

function logits(g: GraphBuilder, training: boolean): Value {
  return bert(
    modelBuilder(g, { seed: 1, training }),
    g.input('input_ids', 'int64', ['batch', 8]),
    g.input('attention_mask', 'int64', ['batch', 8]),
    CONFIG,
  ).logits!;
}

const step = () =>
  buildTrainingStep({
    optimizer: { kind: 'adamw' },
    build: (g) => {
      const o = ops(g);
      return {
        loss: o.neg(
          o.reduceMean(
            o.reduceSum(o.mul(o.logSoftmax(logits(g, true), -1), g.input('y', 'float32', ['batch', 2])), [1], false),
            [0],
            false,
          ),
        ),
      };
    },
  });

const batch = (i: number) => ({
  input_ids: new ort.Tensor(
    'int64',
    BigInt64Array.from({ length: 32 }, (_, k) => BigInt(1 + ((k * 7 + i) % 49))),
    [4, 8],
  ),
  attention_mask: new ort.Tensor('int64', new BigInt64Array(32).fill(1n), [4, 8]),
  y: new ort.Tensor(
    'float32',
    Float32Array.from({ length: 8 }, (_, k) => ((k + i) % 2 === 0 ? 1 : 0)),
    [4, 2],
  ),
});

describe('dropout in training graphs', () => {
  it('draws different masks for different seeds, the same for the same seed', async () => {
    const [a, b, c] = await Promise.all([
      Trainer.create(step(), { seed: 1 }),
      Trainer.create(step(), { seed: 1 }),
      Trainer.create(step(), { seed: 2 }),
    ]);
    const [la, lb, lc] = [
      await a.trainStep(batch(0), 0),
      await b.trainStep(batch(0), 0),
      await c.trainStep(batch(0), 0),
    ];
    expect(lb.loss).toBe(la.loss);
    expect(lc.loss).not.toBe(la.loss);
    await Promise.all([a.release(), b.release(), c.release()]);
  });

  it('resumes from a checkpoint drawing the masks an uninterrupted run draws', async () => {
    const graph = step();
    const straight = await Trainer.create(graph, { seed: 5 });
    for (let i = 0; i < 4; i++) await straight.trainStep(batch(i), 1e-2);
    const first = await Trainer.create(graph, { seed: 5 });
    for (let i = 0; i < 2; i++) await first.trainStep(batch(i), 1e-2);
    const second = await Trainer.create(graph, { seed: 5 });
    second.load(first.state());
    for (let i = 2; i < 4; i++) await second.trainStep(batch(i), 1e-2);
    for (const [name, t] of straight.parameters())
      expect(Array.from(second.parameters().get(name)!.data as Float32Array)).toEqual(
        Array.from(t.data as Float32Array),
      );
    await Promise.all([straight.release(), first.release(), second.release()]);
  });

  it('is absent from exported inference models', async () => {
    const trainer = await Trainer.create(step());
    const session = await ort.InferenceSession.create(
      exportInferenceModel((g) => ({ logits: logits(g, false) }), trainer.parameters()),
    );
    expect(session.inputNames).toEqual(['input_ids', 'attention_mask']);
    await Promise.all([session.release(), trainer.release()]);
  });
});
