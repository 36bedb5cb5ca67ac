import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, encodeModel, ops, tensor, type Tensor, type Value } from '@medsyn/onnx-graph';
import { seededRandom } from '@medsyn/random';
import { makeTempDir } from '@medsyn/testing';
import {
  Trainer,
  buildTrainingStep,
  decodeSafetensors,
  encodeSafetensors,
  gradients,
  type AdamWConfig,
  type SgdConfig,
} from '../src';
import { crossEntropy, init, smallCnn } from './fixtures';

const tmp = makeTempDir('torch-reference');
afterAll(() => tmp.remove());

const STEPS = 20;
const BATCH = 16;

interface Case {
  model: 'small_cnn' | 'mlp';
  meta: Record<string, string>;
  inputShape: number[];
  classes: number;
  optimizer: Required<AdamWConfig> | Required<Omit<SgdConfig, 'nesterov'>>;
  lr: number;
  logits: (g: GraphBuilder, x: Value) => Value;
}

function mlp(g: GraphBuilder, x: Value): Value {
  const o = ops(g);
  const rand = seededRandom(3);
  const h = g.scope('fc1', () =>
    o.gemm(x, g.parameter('weight', init(rand, [32, 12], 12)), g.parameter('bias', init(rand, [32], 12)), {
      transB: true,
    }),
  );
  const n = g.scope(
    'norm',
    () =>
      o.layerNormalization(h, g.parameter('weight', init(rand, [32], 3)), g.parameter('bias', init(rand, [32], 3)))[0],
  );
  return g.scope('fc2', () =>
    o.gemm(o.gelu(n), g.parameter('weight', init(rand, [3, 32], 32)), g.parameter('bias', init(rand, [3], 32)), {
      transB: true,
    }),
  );
}

const CASES: Case[] = [
  {
    model: 'small_cnn',
    meta: { classes: '2' },
    inputShape: [1, 8, 8],
    classes: 2,
    optimizer: { kind: 'adamw', beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.05 },
    lr: 3e-3,
    logits: (g, x) => smallCnn(g, x, 2, true),
  },
  {
    model: 'small_cnn',
    meta: { classes: '2' },
    inputShape: [1, 8, 8],
    classes: 2,
    optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 1e-4 },
    lr: 0.02,
    logits: (g, x) => smallCnn(g, x, 2, true),
  },
  {
    model: 'mlp',
    meta: { features: '12', hidden: '32', classes: '3' },
    inputShape: [12],
    classes: 3,
    optimizer: { kind: 'adamw', beta1: 0.8, beta2: 0.99, epsilon: 1e-6, weightDecay: 0.01 },
    lr: 1e-2,
    logits: mlp,
  },
];

/** max |a - b| / max |b|: the error relative to the reference tensor's scale. */
function relativeError(a: Tensor, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  const values = a.data as Float32Array;
  b.forEach((v, i) => {
    diff = Math.max(diff, Math.abs(values[i]! - v));
    scale = Math.max(scale, Math.abs(v));
  });
  return diff / Math.max(scale, 1e-12);
}

describe.each(CASES)('$model with $optimizer.kind against PyTorch 1.13', (c) => {
  let reference: { tensors: Map<string, Tensor>; metadata: Record<string, string> };
  let trainer: Trainer;
  const batches: { x: Tensor; y: Tensor }[] = [];
  const step = () =>
    buildTrainingStep({
      optimizer: c.optimizer,
      build: (g) => {
        const x = g.input('x', 'float32', ['batch', ...c.inputShape]);
        return { loss: crossEntropy(g, c.logits(g, x), g.input('y', 'float32', ['batch', c.classes])).loss };
      },
    });

  beforeAll(async () => {
    const rand = seededRandom(11);
    for (let s = 0; s < STEPS; s++) {
      const size = BATCH * c.inputShape.reduce((a, b) => a * b, 1);
      const labels = Array.from({ length: BATCH }, () => Math.floor(rand() * c.classes));
      batches.push({
        x: tensor(
          'float32',
          [BATCH, ...c.inputShape],
          Array.from({ length: size }, () => rand() * 2 - 1),
        ),
        y: tensor(
          'float32',
          [BATCH, c.classes],
          labels.flatMap((l) => Array.from({ length: c.classes }, (_, k) => (k === l ? 1 : 0))),
        ),
      });
    }
    trainer = await Trainer.create(step());
    const caseTensors = new Map<string, Tensor>(trainer.parameters());
    batches.forEach((b, s) => {
      caseTensors.set(`batch.${s}.x`, b.x);
      caseTensors.set(`batch.${s}.y`, b.y);
    });
    const caseFile = path.join(tmp.dir, `${c.model}-${c.optimizer.kind}.safetensors`);
    const outFile = `${caseFile}.out`;
    fs.writeFileSync(
      caseFile,
      encodeSafetensors(caseTensors, {
        model: c.model,
        ...c.meta,
        steps: String(STEPS),
        lr: String(c.lr),
        optimizer: JSON.stringify(c.optimizer),
      }),
    );
    execFileSync('/usr/bin/python3', [path.join(__dirname, 'python', 'torch_reference.py'), caseFile, outFile], {
      stdio: 'pipe',
    });
    reference = decodeSafetensors(fs.readFileSync(outFile));
  }, 120000);

  afterAll(async () => trainer?.release());

  it('computes the same loss and parameter gradients (relative error <= 1e-4)', async () => {
    const g = new GraphBuilder('gradients', { parametersAsInputs: true });
    const x = g.input('x', 'float32', ['batch', ...c.inputShape]);
    const { loss } = crossEntropy(g, c.logits(g, x), g.input('y', 'float32', ['batch', c.classes]));
    g.output(loss, 'loss');
    const trainable = [...g.parameters.values()].filter((p) => p.trainable).map((p) => p.value);
    for (const [name, grad] of gradients(g, loss, trainable)) g.output(grad, `grad.${name}`);
    const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()));
    const toOrt = (t: Tensor) => new ort.Tensor('float32', t.data as Float32Array, t.dims);
    const feeds = {
      x: toOrt(batches[0]!.x),
      y: toOrt(batches[0]!.y),
      ...Object.fromEntries([...g.parameters].map(([n, p]) => [n, toOrt(p.initial)])),
    };
    const out = await session.run(feeds);
    const referenceLosses = JSON.parse(reference.metadata.losses!) as number[];
    expect(Math.abs(Number(out.loss!.data[0]) - referenceLosses[0]!) / Math.abs(referenceLosses[0]!)).toBeLessThan(
      1e-5,
    );
    for (const p of trainable) {
      const expected = reference.tensors.get(`grad.${p.name}`)!.data as Float32Array;
      const actual = {
        dtype: 'float32',
        dims: [...out[`grad.${p.name}`]!.dims],
        data: out[`grad.${p.name}`]!.data,
      } as Tensor;
      expect([p.name, relativeError(actual, expected) <= 1e-4]).toEqual([p.name, true]);
    }
    await session.release();
  });

  it(`follows the same trajectory over ${STEPS} optimizer steps`, async () => {
    const toOrt = (t: Tensor) => new ort.Tensor('float32', t.data as Float32Array, t.dims);
    const losses: number[] = [];
    for (const b of batches) losses.push((await trainer.trainStep({ x: toOrt(b.x), y: toOrt(b.y) }, c.lr)).loss);
    const referenceLosses = JSON.parse(reference.metadata.losses!) as number[];
    losses.forEach((loss, i) =>
      expect(Math.abs(loss - referenceLosses[i]!) / Math.abs(referenceLosses[i]!)).toBeLessThan(1e-3),
    );
    // Parameters and buffers (BatchNorm running statistics included) after the last step.
    for (const [name, value] of trainer.parameters()) {
      const expected = reference.tensors.get(`final.${name}`);
      expect(expected).toBeDefined();
      expect([name, relativeError(value, expected!.data as Float32Array) < 1e-3]).toEqual([name, true]);
    }
  });
});
