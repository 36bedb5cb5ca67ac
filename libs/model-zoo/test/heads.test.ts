import * as ort from 'onnxruntime-node';
import { GraphBuilder, ops, type Value } from '@medsyn/onnx-graph';
import { seededRandom, type Random } from '@medsyn/random';
import { checkOnnxModel } from '@medsyn/testing';
import { Trainer, buildTrainingStep, exportInferenceModel } from '@medsyn/training';
import { detectionHead, modelBuilder, resnet, unetDecoder } from '../src';

const SIZE = 32;

/** A ResNet-18 (width 8) encoder with a U-Net decoder over its stem and four stages: per-pixel logits [batch, 1, 32, 32]. */
function segmenter(g: GraphBuilder, x: Value, training: boolean): Value {
  const b = modelBuilder(g, { seed: 7, training });
  const { stem, stages } = resnet(b, x, { depth: 18, width: 8, inChannels: 1 });
  return unetDecoder(b, [stem, ...stages], {
    encoderChannels: [8, 8, 16, 32, 64],
    decoderChannels: [32, 16, 8, 8],
    classes: 1,
    finalUpsample: 2,
  });
}

/** Images of noise with a bright square; the mask marks the square. */
function squares(count: number, rand: Random) {
  const images = new Float32Array(count * SIZE * SIZE);
  const masks = new Float32Array(count * SIZE * SIZE);
  for (let n = 0; n < count; n++) {
    const top = 4 + Math.floor(rand() * 16);
    const left = 4 + Math.floor(rand() * 16);
    for (let i = 0; i < SIZE; i++) {
      for (let j = 0; j < SIZE; j++) {
        const inside = i >= top && i < top + 10 && j >= left && j < left + 10;
        images[n * SIZE * SIZE + i * SIZE + j] = rand() * 0.5 + (inside ? 0.8 : 0);
        masks[n * SIZE * SIZE + i * SIZE + j] = inside ? 1 : 0;
      }
    }
  }
  return {
    x: new ort.Tensor('float32', images, [count, 1, SIZE, SIZE]),
    mask: new ort.Tensor('float32', masks, [count, 1, SIZE, SIZE]),
  };
}

describe('task heads', () => {
  it('a ResNet + U-Net decoder learns to segment squares (Dice >= 0.9)', async () => {
    const step = buildTrainingStep({
      optimizer: { kind: 'adamw', weightDecay: 1e-4 },
      build: (g) => {
        const o = ops(g);
        const logits = segmenter(g, g.input('x', 'float32', ['batch', 1, SIZE, SIZE]), true);
        const mask = g.input('mask', 'float32', ['batch', 1, SIZE, SIZE]);
        // Binary cross-entropy with logits: softplus(z) - z * y, in a stable form.
        const loss = o.reduceMean(
          o.sub(
            o.add(o.relu(logits), o.log(o.add(o.scalar('float32', 1), o.exp(o.neg(o.abs(logits)))))),
            o.mul(logits, mask),
          ),
          [],
          false,
        );
        return { loss };
      },
    });
    const trainer = await Trainer.create(step);
    const training = seededRandom(1);
    for (let i = 0; i < 100; i++) await trainer.trainStep(squares(8, training), 1e-2);
    const model = exportInferenceModel(
      (g) => ({ logits: segmenter(g, g.input('x', 'float32', ['batch', 1, SIZE, SIZE]), false) }),
      trainer.parameters(),
    );
    checkOnnxModel(model, 'segmenter');
    const session = await ort.InferenceSession.create(model);
    const test = squares(16, seededRandom(999));
    const logits = (await session.run({ x: test.x })).logits!.data as Float32Array;
    const truth = test.mask.data as Float32Array;
    let overlap = 0;
    let total = 0;
    logits.forEach((z, i) => {
      const predicted = z > 0 ? 1 : 0;
      overlap += predicted * truth[i]!;
      total += predicted + truth[i]!;
    });
    expect((2 * overlap) / total).toBeGreaterThanOrEqual(0.9);
    await Promise.all([session.release(), trainer.release()]);
  }, 180000);

  it('a detection head gives class, box and centerness maps per location', () => {
    const g = new GraphBuilder('detector');
    const b = modelBuilder(g);
    const { stages } = resnet(b, g.input('x', 'float32', ['batch', 3, 64, 64]), { depth: 18, width: 8 });
    const out = detectionHead(b, stages[2]!, { inChannels: 32, channels: 16, classes: 2 });
    expect(out.classLogits.shape).toEqual(['batch', 2, 4, 4]);
    expect(out.boxes.shape).toEqual(['batch', 4, 4, 4]);
    expect(out.centerness.shape).toEqual(['batch', 1, 4, 4]);
    expect([...g.parameters.keys()].filter((n) => n.startsWith('head.'))).toEqual(
      expect.arrayContaining([
        'head.cls_tower.0.weight',
        'head.bbox_tower.2.weight',
        'head.cls_logits.weight',
        'head.bbox_pred.bias',
        'head.centerness.weight',
      ]),
    );
  });
});
