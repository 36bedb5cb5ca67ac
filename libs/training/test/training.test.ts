import * as ort from 'onnxruntime-node';
import { checkOnnxModel } from '@medsyn/testing';
import {
  ExecutionProviderError,
  Trainer,
  exportInferenceModel,
  buildTrainingStep,
  decodeSafetensors,
  encodeSafetensors,
  type TrainingStepSpec,
} from '../src';
import { ops, tensor } from '@medsyn/onnx-graph';
import { batchOf, crossEntropy, smallCnn, squaresDataset } from './fixtures';

const BATCH = 32;

function cnnStep(optimizer: TrainingStepSpec['optimizer'], maxGradNorm?: number): TrainingStepSpec {
  return {
    optimizer,
    maxGradNorm,
    build: (g) => {
      const x = g.input('x', 'float32', ['batch', 1, 8, 8]);
      const y = g.input('y', 'float32', ['batch', 2]);
      const { loss, accuracy } = crossEntropy(g, smallCnn(g, x, 2, true), y);
      return { loss, metrics: { accuracy } };
    },
  };
}

describe('training on onnxruntime', () => {
  it('teaches a small CNN a separable task to >= 95% held-out accuracy', async () => {
    const trainer = await Trainer.create(buildTrainingStep(cnnStep({ kind: 'adamw', weightDecay: 1e-4 })));
    const train = squaresDataset(640, 1);
    const losses: number[] = [];
    for (let epoch = 0; epoch < 4; epoch++) {
      for (let b = 0; b < 640 / BATCH; b++)
        losses.push((await trainer.trainStep(batchOf(train, b * BATCH, BATCH), 0.01)).loss);
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]! / 4);

    // Evaluate the exported inference model (BatchNorm on its running statistics).
    const model = exportInferenceModel(
      (g) => ({ logits: smallCnn(g, g.input('x', 'float32', ['batch', 1, 8, 8]), 2, false) }),
      trainer.parameters(),
    );
    const session = await ort.InferenceSession.create(model);
    const test = squaresDataset(400, 99);
    const logits = (await session.run({ x: batchOf(test, 0, 400).x })).logits!.data as Float32Array;
    const correct = test.labels.filter((label, n) => (logits[n * 2 + 1]! > logits[n * 2]! ? 1 : 0) === label).length;
    expect(correct / 400).toBeGreaterThanOrEqual(0.95);
    const running = trainer.parameters().get('bn1.running_mean')!.data as Float32Array;
    expect(Array.from(running).some((v) => v !== 0)).toBe(true);
    await session.release();
    await trainer.release();
  }, 120000);

  it('continues bit-identically from a safetensors checkpoint', async () => {
    const graph = buildTrainingStep(cnnStep({ kind: 'sgd', momentum: 0.9, weightDecay: 1e-4 }, 1.0));
    const data = squaresDataset(10 * BATCH, 5);
    const initial = [...graph.parameters].map(([name, p]) => [name, Buffer.from(p.initial.data.slice().buffer)]);
    const straight = await Trainer.create(graph, { intraOpThreads: 1 });
    for (let b = 0; b < 10; b++) await straight.trainStep(batchOf(data, b * BATCH, BATCH), 0.05);
    // The trainer borrows the graph's initial parameters: read, never written.
    expect([...graph.parameters].map(([name, p]) => [name, Buffer.from(p.initial.data.buffer)])).toEqual(initial);

    const first = await Trainer.create(graph, { intraOpThreads: 1 });
    for (let b = 0; b < 5; b++) await first.trainStep(batchOf(data, b * BATCH, BATCH), 0.05);
    const snapshot = first.state();
    const bytes = encodeSafetensors(snapshot.tensors, { step: String(snapshot.step) });
    const restored = decodeSafetensors(bytes);
    const second = await Trainer.create(graph, { intraOpThreads: 1 });
    second.load({ tensors: restored.tensors, step: Number(restored.metadata.step) });
    for (let b = 5; b < 10; b++) await second.trainStep(batchOf(data, b * BATCH, BATCH), 0.05);

    expect(second.step).toBe(10);
    for (const [name, t] of straight.state().tensors) {
      expect(Buffer.from((second.state().tensors.get(name)!.data as Float32Array).buffer)).toEqual(
        Buffer.from((t.data as Float32Array).buffer),
      );
    }
    await Promise.all([straight.release(), first.release(), second.release()]);
  }, 60000);

  it('emits step graphs and exported models that the ONNX reference checker accepts', async () => {
    const trainer = await Trainer.create(buildTrainingStep(cnnStep({ kind: 'adamw' }, 1)));
    checkOnnxModel(trainer.model, 'training_step');
    checkOnnxModel(
      exportInferenceModel(
        (g) => ({ logits: smallCnn(g, g.input('x', 'float32', ['batch', 1, 8, 8]), 2, false) }),
        trainer.parameters(),
      ),
      'exported',
    );
    await trainer.release();
  });

  it('refuses a checkpoint that does not fit the model', async () => {
    const trainer = await Trainer.create(buildTrainingStep(cnnStep({ kind: 'adamw' })));
    const state = trainer.state();
    state.tensors.delete('fc.bias');
    expect(() => trainer.load(state)).toThrow(/checkpoint lacks fc.bias/);
    await trainer.release();
  });

  it.each(['cuda', 'webgpu'] as const)('says clearly when the %s provider is unavailable', async (provider) => {
    await expect(
      Trainer.create(buildTrainingStep(cnnStep({ kind: 'adamw' })), { executionProvider: provider }),
    ).rejects.toThrow(ExecutionProviderError);
  });
});

describe('gradient accumulation', () => {
  function mlpStep(gradientAccumulation: number) {
    return buildTrainingStep({
      optimizer: { kind: 'adamw', weightDecay: 0.01 },
      maxGradNorm: 0.5,
      gradientAccumulation,
      build: (g) => {
        const o = ops(g);
        const x = g.input('x', 'float32', ['batch', 6]);
        const w = g.parameter(
          'fc.weight',
          tensor(
            'float32',
            [2, 6],
            Array.from({ length: 12 }, (_, i) => Math.sin(i)),
          ),
        );
        const b = g.parameter('fc.bias', tensor('float32', [2], [0.1, -0.1]));
        return crossEntropy(g, o.gemm(o.tanh(x), w, b, { transB: true }), g.input('y', 'float32', ['batch', 2]));
      },
    });
  }
  const slice = (t: ort.Tensor, from: number, to: number) => {
    const width = t.dims[1]!;
    return new ort.Tensor('float32', (t.data as Float32Array).slice(from * width, to * width), [to - from, width]);
  };

  it('makes two micro-batches of 8 one optimizer step equal to a batch of 16', async () => {
    const data = squaresDataset(16, 3);
    const x = new ort.Tensor(
      'float32',
      Float32Array.from({ length: 96 }, (_, i) => Math.cos(i * 0.37)),
      [16, 6],
    );
    const y = new ort.Tensor('float32', data.oneHot, [16, 2]);
    const whole = await Trainer.create(mlpStep(1));
    const accumulated = await Trainer.create(mlpStep(2));
    for (let step = 0; step < 3; step++) {
      const a = await whole.trainStep({ x, y }, 0.05);
      const b = await accumulated.trainStep(
        [
          { x: slice(x, 0, 8), y: slice(y, 0, 8) },
          { x: slice(x, 8, 16), y: slice(y, 8, 16) },
        ],
        0.05,
      );
      expect(b.loss).toBeCloseTo(a.loss, 5);
      expect(b.gradNorm).toBeCloseTo(a.gradNorm, 5);
    }
    expect(accumulated.step).toBe(3);
    for (const [name, t] of whole.parameters()) {
      const other = accumulated.parameters().get(name)!.data as Float32Array;
      (t.data as Float32Array).forEach((v, i) => expect(other[i]).toBeCloseTo(v, 5));
    }
    await expect(accumulated.trainStep({ x, y }, 0.05)).rejects.toThrow(/takes 2 micro-batch/);
    await Promise.all([whole.release(), accumulated.release()]);
  });
});
