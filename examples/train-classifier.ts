// Defines a small CNN, trains it on onnxruntime (CPU), checkpoints it to the artifact store,
// exports an inference ONNX model and runs it. Run: npm run example:train
import * as ort from 'onnxruntime-node';
import { getBuffer, openStore } from '@medsyn/artifact-store';
import { ops, tensor, type GraphBuilder, type Value } from '@medsyn/onnx-graph';
import { seededRandom, type Random } from '@medsyn/random';
import {
  Trainer,
  buildTrainingStep,
  decodeSafetensors,
  encodeSafetensors,
  exportInferenceModel,
} from '@medsyn/training';

// 1. A model is a function that builds its graph; parameters get PyTorch-style names.
function classifier(g: GraphBuilder, x: Value): Value {
  const o = ops(g);
  const seeded = (dims: number[], fanIn: number) => {
    const random = seededRandom(dims.length * 7919 + fanIn);
    return tensor(
      'float32',
      dims,
      Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (random() * 2 - 1) * Math.sqrt(6 / fanIn)),
    );
  };
  let h = o.relu(
    o.conv(x, g.parameter('conv1.weight', seeded([8, 1, 3, 3], 9)), g.parameter('conv1.bias', tensor('float32', [8])), {
      pads: [1, 1, 1, 1],
    }),
  );
  h = o.maxPool(h, { kernel: [2, 2], strides: [2, 2] });
  h = o.flatten(
    o.globalAveragePool(
      o.relu(o.conv(h, g.parameter('conv2.weight', seeded([16, 8, 3, 3], 72)), undefined, { pads: [1, 1, 1, 1] })),
    ),
    1,
  );
  return o.gemm(h, g.parameter('fc.weight', seeded([2, 16], 16)), g.parameter('fc.bias', tensor('float32', [2])), {
    transB: true,
  });
}

// Synthetic data: a bright square in the left (class 0) or right (class 1) half of 8x8 noise.
function batch(size: number, rand: Random) {
  const x = new Float32Array(size * 64);
  const y = new Float32Array(size * 2);
  for (let n = 0; n < size; n++) {
    const label = rand() < 0.5 ? 0 : 1;
    y[n * 2 + label] = 1;
    for (let i = 0; i < 64; i++) x[n * 64 + i] = rand() * 0.6;
    const top = Math.floor(rand() * 6);
    const left = label ? 4 + Math.floor(rand() * 2) : Math.floor(rand() * 2);
    for (let i = 0; i < 9; i++) x[n * 64 + (top + Math.floor(i / 3)) * 8 + left + (i % 3)] += 1;
  }
  return { x: new ort.Tensor('float32', x, [size, 1, 8, 8]), y: new ort.Tensor('float32', y, [size, 2]) };
}

async function main() {
  // 2. A training step = forward + loss + backward + AdamW update, one ONNX graph of standard ops.
  const step = buildTrainingStep({
    optimizer: { kind: 'adamw', weightDecay: 1e-4 },
    maxGradNorm: 1,
    build: (g) => {
      const o = ops(g);
      const logits = classifier(g, g.input('x', 'float32', ['batch', 1, 8, 8]));
      const target = g.input('y', 'float32', ['batch', 2]);
      const loss = o.neg(o.reduceMean(o.reduceSum(o.mul(o.logSoftmax(logits), target), [1], false), [0], false));
      return { loss };
    },
  });
  const trainer = await Trainer.create(step, { executionProvider: 'cpu' });
  const steps = 60;
  const training = seededRandom(1);
  for (let i = 0; i < steps; i++) {
    // Any schedule: the learning rate is an input of each step (here warm-up then cosine).
    const lr = 0.01 * Math.min(1, (i + 1) / 5) * 0.5 * (1 + Math.cos((Math.PI * i) / steps));
    const { loss, gradNorm } = await trainer.trainStep(batch(32, training), lr);
    if (i % 10 === 0 || i === steps - 1)
      console.log(`step ${i + 1}: loss ${loss.toFixed(4)}, grad norm ${gradNorm.toFixed(3)}`);
  }

  // 3. Checkpoint (safetensors) into the artifact store, and restore it into a fresh trainer.
  const store = openStore(process.env.MEDSYN_STORE ?? 'file://./.medsyn');
  const state = trainer.state();
  const ref = await store.put(
    'examples/classifier/checkpoint.safetensors',
    encodeSafetensors(state.tensors, { step: String(state.step) }),
  );
  console.log(`checkpoint: ${ref.uri} (${ref.sizeBytes} bytes, sha256 ${ref.sha256.slice(0, 12)}…)`);
  const restored = decodeSafetensors(await getBuffer(store, 'examples/classifier/checkpoint.safetensors'));
  const resumed = await Trainer.create(step);
  resumed.load({ tensors: restored.tensors, step: Number(restored.metadata.step) });

  // 4. Export an inference model with the trained weights and use it.
  const model = exportInferenceModel(
    (g) => ({ logits: classifier(g, g.input('x', 'float32', ['batch', 1, 8, 8])) }),
    resumed.parameters(),
  );
  await store.put('examples/classifier/model.onnx', model);
  const session = await ort.InferenceSession.create(model);
  const test = batch(200, seededRandom(424242));
  const logits = (await session.run({ x: test.x })).logits!.data as Float32Array;
  const labels = test.y.data as Float32Array;
  let correct = 0;
  for (let n = 0; n < 200; n++) correct += Number(logits[n * 2 + 1]! > logits[n * 2]!) === labels[n * 2 + 1] ? 1 : 0;
  console.log(`held-out accuracy of the exported model: ${((correct / 200) * 100).toFixed(1)}%`);
  await Promise.all([session.release(), trainer.release(), resumed.release()]);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
