import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { encodeGrayPng, grayImage, normalizeInto, resize, type GrayImage } from '@medsyn/imaging';
import { linear, modelBuilder, resnet } from '@medsyn/model-zoo';
import { GraphBuilder, type Tensor } from '@medsyn/onnx-graph';
import { Trainer, buildTrainingStep, exportInferenceModel } from '@medsyn/training';
import { softmaxCrossEntropy } from '../src/linear-probe';
import { seededRandom } from '../src/splits';

export const SIZE = 32;
const WIDTH = 4;
const STAGES = ['layer1', 'layer2', 'layer3', 'layer4'];

function encoderGraph(g: GraphBuilder, seed: number, training: boolean) {
  const b = modelBuilder(g, { seed, training });
  const out = resnet(b, g.input('pixel_values', 'float32', ['batch', 1, SIZE, SIZE]), { depth: 18, width: WIDTH, inChannels: 1 });
  return { b, out };
}

/** Writes a docs/encoder-bundle.md bundle of a tiny ResNet-18 (width 4, 32 px) with the given parameters. */
export function writeBundle(dir: string, parameters?: Map<string, Tensor>, seed = 0, options: { featureDim?: number } = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  let params = parameters;
  if (!params) {
    const g = new GraphBuilder('init');
    encoderGraph(g, seed, false);
    params = new Map([...g.parameters].map(([name, p]) => [name, p.initial]));
  }
  const model = exportInferenceModel((g) => {
    const { out } = encoderGraph(g, seed, false);
    return { image_features: out.features, stem: out.stem, ...Object.fromEntries(out.stages.map((s, i) => [STAGES[i]!, s])) };
  }, params!);
  fs.writeFileSync(path.join(dir, 'image_encoder.onnx'), model);
  const manifest = {
    format: 'medsyn.encoder-bundle/v1',
    method: 'fixture',
    image: {
      architecture: 'resnet18',
      input: { name: 'pixel_values', channels: 1, size: SIZE, mean: 0.5, std: 0.5 },
      features: { name: 'image_features', dim: options.featureDim ?? WIDTH * 8 },
      feature_maps: [
        { name: 'stem', stride: 2, channels: WIDTH },
        ...STAGES.map((name, i) => ({ name, stride: 4 * 2 ** i, channels: WIDTH * 2 ** i })),
      ],
    },
  };
  fs.writeFileSync(path.join(dir, 'encoder.json'), JSON.stringify(manifest, null, 2));
  return dir;
}

/**
 * Separable fixture: noise plus a bright blob; class 1 has a dark horizontal bar through the
 * blob, class 0 does not. Returns images and labels, deterministic per seed.
 */
export function separableImages(count: number, seed: number): { images: GrayImage[]; labels: number[] } {
  const rand = seededRandom(seed);
  const images: GrayImage[] = [];
  const labels: number[] = [];
  for (let n = 0; n < count; n++) {
    const label = n % 2;
    const image = grayImage(48, 48);
    for (let i = 0; i < image.data.length; i++) image.data[i] = 0.2 + 0.3 * rand();
    const cx = 12 + Math.floor(rand() * 24);
    const cy = 12 + Math.floor(rand() * 24);
    for (let y = cy - 8; y < cy + 8; y++) for (let x = cx - 8; x < cx + 8; x++) image.data[y * 48 + x] = label && Math.abs(y - cy) < 3 ? 0.1 : 0.9;
    images.push(image);
    labels.push(label);
  }
  return { images, labels };
}

/** Writes fixture images as PNGs and a generic label CSV (image,positive). */
export function writeCsvDataset(dir: string, count: number, seed: number): string {
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  const { images, labels } = separableImages(count, seed);
  const rows = ['image,positive,patient'];
  images.forEach((image, i) => {
    fs.writeFileSync(path.join(dir, 'images', `img${i}.png`), encodeGrayPng(image));
    rows.push(`img${i}.png,${labels[i]},p${i}`);
  });
  fs.writeFileSync(path.join(dir, 'labels.csv'), rows.join('\n') + '\n');
  return dir;
}

/** A tiny ResNet trained as a classifier on the separable fixture, exported as an encoder bundle. */
export async function writeTrainedBundle(dir: string, seed = 0, steps = 40): Promise<string> {
  const step = buildTrainingStep({
    optimizer: { kind: 'adamw', weightDecay: 1e-4 },
    build: (g) => {
      const { b, out } = encoderGraph(g, seed, true);
      const logits = linear(b, 'fc', out.features, WIDTH * 8, 2);
      return { loss: softmaxCrossEntropy(b.o, logits, g.input('y', 'float32', ['batch', 2])) };
    },
  });
  const trainer = await Trainer.create(step);
  for (let s = 0; s < steps; s++) {
    const { images, labels } = separableImages(32, 1000 + s);
    const x = new Float32Array(32 * SIZE * SIZE);
    const y = new Float32Array(32 * 2);
    images.forEach((im, i) => {
      normalizeInto(resize(im, SIZE, SIZE), x, i * SIZE * SIZE);
      y[i * 2 + labels[i]!] = 1;
    });
    await trainer.trainStep({ pixel_values: new ort.Tensor('float32', x, [32, 1, SIZE, SIZE]), y: new ort.Tensor('float32', y, [32, 2]) }, 3e-3);
  }
  const params = trainer.parameters();
  await trainer.release();
  return writeBundle(dir, params, seed);
}
