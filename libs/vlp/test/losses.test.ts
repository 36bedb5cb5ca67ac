import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, encodeModel, ops, tensor, type Tensor, type Value } from '@medsyn/onnx-graph';
import { seededRandom, standardNormal } from '@medsyn/random';
import { gradients } from '@medsyn/training';
import { makeTempDir } from '@medsyn/testing';
import { convirtLoss, gloriaLoss, mgcaLoss, type LossOutput } from '../src';

const temp = makeTempDir('vlp-losses');
afterAll(() => temp.remove());

/** Seeded N(0, 1) tensors, so the fixtures are the same every run. */
function randn(seed: number) {
  const random = seededRandom(seed);
  return (dims: number[], scale = 1): Tensor =>
    tensor(
      'float32',
      dims,
      Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => scale * standardNormal(random)),
    );
}

/** Word masks with different report lengths: [CLS] w1..wn [SEP] [PAD]... as training batches carry them. */
function wordMask(batch: number, length: number): Tensor {
  const lengths = Array.from({ length: batch }, (_, i) => 1 + ((i * 3) % (length - 2)));
  return tensor(
    'float32',
    [batch, length],
    Array.from({ length: batch * length }, (_, k) => {
      const t = k % length;
      return t >= 1 && t <= lengths[Math.floor(k / length)] ? 1 : 0;
    }),
  );
}

interface Case {
  inputs: Record<string, Tensor>;
  mask?: Tensor;
  build: (o: ReturnType<typeof ops>, x: Record<string, Value>, mask: Value | undefined) => LossOutput;
  method: string;
  options?: Record<string, number>;
}

async function ours(
  c: Case,
): Promise<{ loss: number; parts: Record<string, number>; grads: Record<string, Float32Array> }> {
  const g = new GraphBuilder('loss');
  const o = ops(g);
  const x = Object.fromEntries(Object.entries(c.inputs).map(([name, t]) => [name, g.parameter(name, t)]));
  const mask = c.mask ? g.input('word_mask', 'float32', c.mask.dims) : undefined;
  const out = c.build(o, x, mask);
  g.output(out.loss, 'loss');
  for (const [name, v] of Object.entries(out.parts)) g.output(v, `part.${name}`);
  const grads = gradients(g, out.loss, Object.values(x));
  for (const [name, v] of grads) g.output(v, `grad.${name}`);
  const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()));
  const feeds: Record<string, ort.Tensor> = c.mask
    ? { word_mask: new ort.Tensor('float32', c.mask.data as Float32Array, c.mask.dims) }
    : {};
  const result = await session.run(feeds);
  await session.release();
  const parts: Record<string, number> = {};
  const gradsOut: Record<string, Float32Array> = {};
  for (const [name, t] of Object.entries(result)) {
    if (name.startsWith('part.')) parts[name.slice(5)] = Number(t.data[0]);
    if (name.startsWith('grad.')) gradsOut[name.slice(5)] = t.data as Float32Array;
  }
  return { loss: Number(result.loss.data[0]), parts, grads: gradsOut };
}

function reference(c: Case): { loss: number; parts: Record<string, number>; grads: Record<string, number[]> } {
  const file = join(temp.dir, `${c.method}.json`);
  const asJson = (t: Tensor) => ({ dims: t.dims, data: Array.from(t.data as Float32Array) });
  writeFileSync(
    file,
    JSON.stringify({
      method: c.method,
      inputs: Object.fromEntries(Object.entries(c.inputs).map(([k, t]) => [k, asJson(t)])),
      ...(c.mask ? { word_mask: asJson(c.mask) } : {}),
      options: c.options ?? {},
    }),
  );
  return JSON.parse(
    execFileSync('/usr/bin/python3', [join(__dirname, 'python', 'vlp_losses_reference.py'), file], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    }),
  );
}

/** max |a - b| / max(max |b|, 1e-3): relative to the tensor's scale. */
function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 1e-3;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

async function expectMatchesReference(c: Case): Promise<void> {
  const [got, want] = [await ours(c), reference(c)];
  expect(Math.abs(got.loss - want.loss) / Math.max(1, Math.abs(want.loss))).toBeLessThan(1e-4);
  for (const [name, value] of Object.entries(want.parts)) {
    const error = Math.abs(got.parts[name] - value) / Math.max(1, Math.abs(value));
    if (!(error < 1e-4)) throw new Error(`loss part ${name}: ours ${got.parts[name]}, reference ${value}`);
  }
  for (const [name, grad] of Object.entries(want.grads)) {
    expect(got.grads[name]).toHaveLength(grad.length);
    const error = relativeError(got.grads[name], grad);
    if (error >= 1e-4) throw new Error(`gradient of ${name}: relative error ${error}`);
  }
}

describe('pre-training losses match PyTorch references (loss, parts and input gradients to 1e-4)', () => {
  const B = 6;
  const D = 8;
  const T = 7;

  it('ConVIRT: symmetric InfoNCE, τ = 0.1, λ = 0.75', async () => {
    const r = randn(1);
    await expectMatchesReference({
      method: 'convirt',
      inputs: { image: r([B, D]), text: r([B, D]) },
      build: (o, x) => convirtLoss(o, x.image, x.text),
    });
  });

  it('ConVIRT with other temperature and weighting', async () => {
    const r = randn(2);
    await expectMatchesReference({
      method: 'convirt',
      options: { temperature: 0.5, imageToTextWeight: 0.3 },
      inputs: { image: r([B, D]), text: r([B, D]) },
      build: (o, x) => convirtLoss(o, x.image, x.text, { temperature: 0.5, imageToTextWeight: 0.3 }),
    });
  });

  it('GLoRIA: global + local (word-to-region attention, τ1 = 4, τ2 = 5, τ3 = 10)', async () => {
    const r = randn(3);
    await expectMatchesReference({
      method: 'gloria',
      inputs: { image: r([B, D]), text: r([B, D]), regions: r([B, 4, D]), words: r([B, T, D]) },
      mask: wordMask(B, T),
      build: (o, x, mask) =>
        gloriaLoss(o, { image: x.image, text: x.text, regions: x.regions, words: x.words, wordMask: mask! }),
    });
  });

  it('MGCA: instance + bidirectional token alignment + Sinkhorn-Knopp prototypes (codes without gradient)', async () => {
    const r = randn(4);
    await expectMatchesReference({
      method: 'mgca',
      inputs: { image: r([B, D]), text: r([B, D]), patches: r([B, 4, D]), words: r([B, T, D]), prototypes: r([5, D]) },
      mask: wordMask(B, T),
      build: (o, x, mask) =>
        mgcaLoss(o, {
          image: x.image,
          text: x.text,
          patches: x.patches,
          words: x.words,
          wordMask: mask!,
          prototypes: x.prototypes,
        }),
    });
  });
});
