import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, decodeModel, encodeModel, importOnnx, ops, type Tensor, type Value } from '@medsyn/onnx-graph';
import { makeTempDir } from '@medsyn/testing';
import { Trainer, buildTrainingStep, decodeSafetensors, gradients } from '@medsyn/training';

const tmp = makeTempDir('import');
afterAll(() => tmp.remove());

describe('importing a model exported by torch.onnx.export', () => {
  let model: ReturnType<typeof decodeModel>;
  let reference: ReturnType<typeof decodeSafetensors>;

  beforeAll(() => {
    execFileSync('/usr/bin/python3', [path.join(__dirname, 'python', 'zoo_reference.py'), 'export-resnet', tmp.dir], {
      stdio: 'pipe',
    });
    model = decodeModel(fs.readFileSync(path.join(tmp.dir, 'resnet18.onnx')));
    reference = decodeSafetensors(fs.readFileSync(path.join(tmp.dir, 'reference.safetensors')));
  }, 120000);

  const crossEntropy = (g: GraphBuilder, logits: Value) => {
    const o = ops(g);
    return o.neg(
      o.reduceMean(
        o.reduceSum(o.mul(o.logSoftmax(logits, -1), g.input('y', 'float32', ['batch', 3])), [1], false),
        [0],
        false,
      ),
    );
  };
  const toOrt = (t: Tensor) => new ort.Tensor('float32', t.data as Float32Array, t.dims);

  it("keeps PyTorch's parameter names and gives its gradients (relative error <= 1e-4)", async () => {
    const g = new GraphBuilder('imported', { parametersAsInputs: true });
    const { logits } = importOnnx(g, model);
    const loss = crossEntropy(g, logits!);
    g.output(loss, 'loss');
    const trainable = [...g.parameters.values()].filter((p) => p.trainable);
    expect(trainable.map((p) => p.value.name).sort()).toEqual(
      [...reference.tensors.keys()]
        .filter((k) => k.startsWith('grad.'))
        .map((k) => k.slice(5))
        .sort(),
    );
    for (const [name, grad] of gradients(
      g,
      loss,
      trainable.map((p) => p.value),
    ))
      g.output(grad, `grad.${name}`);
    const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()));
    const feeds = {
      x: toOrt(reference.tensors.get('x')!),
      y: toOrt(reference.tensors.get('y')!),
      ...Object.fromEntries([...g.parameters].map(([n, p]) => [n, toOrt(p.initial)])),
    };
    const out = await session.run(feeds);
    expect(Math.abs(Number(out.loss!.data[0]) - Number(reference.metadata.loss))).toBeLessThan(
      1e-5 * Math.abs(Number(reference.metadata.loss)),
    );
    const errors = trainable.map((p) => {
      const expected = reference.tensors.get(`grad.${p.value.name}`)!.data as Float32Array;
      const actual = out[`grad.${p.value.name}`]!.data as Float32Array;
      const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      return [p.value.name, actual.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i]!)), 0) / scale] as const;
    });
    expect(errors.filter(([, e]) => !(e <= 1e-4))).toEqual([]);
    await session.release();
  });

  it('trains the imported model with a subset frozen', async () => {
    const step = buildTrainingStep({
      optimizer: { kind: 'sgd', momentum: 0.9 },
      freeze: (name) => !name.startsWith('fc.') && !name.startsWith('layer4.'),
      build: (g) => ({ loss: crossEntropy(g, importOnnx(g, model).logits!) }),
    });
    expect(
      [...step.parameters]
        .filter(([, p]) => p.trainable)
        .map(([n]) => n)
        .every((n) => n.startsWith('fc.') || n.startsWith('layer4.')),
    ).toBe(true);
    const trainer = await Trainer.create(step);
    const batch = { x: toOrt(reference.tensors.get('x')!), y: toOrt(reference.tensors.get('y')!) };
    const first = await trainer.trainStep(batch, 0.01);
    let last = first;
    for (let i = 0; i < 10; i++) last = await trainer.trainStep(batch, 0.01);
    expect(last.loss).toBeLessThan(first.loss / 2);
    const frozen = trainer.parameters().get('conv1.weight')!.data as Float32Array;
    expect(Array.from(frozen.slice(0, 5))).toEqual(
      Array.from((step.parameters.get('conv1.weight')!.initial.data as Float32Array).slice(0, 5)),
    );
    await trainer.release();
  });

  it('refuses models it cannot rebuild, naming the node', () => {
    const bad = decodeModel(fs.readFileSync(path.join(tmp.dir, 'resnet18.onnx')));
    bad.graph!.node[3]!.opType = 'NotAnOnnxOp';
    expect(() => importOnnx(new GraphBuilder('bad'), bad)).toThrow(/NotAnOnnxOp: operator not supported/);
    const old = decodeModel(fs.readFileSync(path.join(tmp.dir, 'resnet18.onnx')));
    old.opsetImport[0]!.version = 11;
    expect(() => importOnnx(new GraphBuilder('old'), old)).toThrow(/opset 11.*re-export with opset_version=17/);
  });
});
