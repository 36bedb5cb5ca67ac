import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { FileArtifactStore } from '@medsyn/artifact-store';
import {
  SCOPES,
  exportEncoderBundle,
  imageEncoder,
  imageInput,
  writeEncoderBundle,
  type EncoderSpec,
} from '@medsyn/encoder-bundle';
import { encodeGrayPng, grayImage, normalizeInto, resize, type GrayImage } from '@medsyn/imaging';
import { linear, modelBuilder } from '@medsyn/model-zoo';
import type { Tensor } from '@medsyn/onnx-graph';
import { Trainer, buildTrainingStep } from '@medsyn/training';
import { softmaxCrossEntropy } from '../src/linear-probe';
import { seededRandom } from '@medsyn/random';

export const SIZE = 32;
/** A tiny ResNet-18 (width 4) at 32 px: encodes a few dozen images in well under a second. */
export const TINY: EncoderSpec = { image: { architecture: 'resnet18', size: SIZE, width: 4 } };

/** Writes a bundle with the given weights (or a seeded random init) to `dir` through @medsyn/encoder-bundle. */
export async function writeBundle(
  dir: string,
  options: {
    parameters?: Map<string, Tensor>;
    seed?: number;
    method?: string;
    spec?: EncoderSpec;
    vocabTxt?: string;
  } = {},
): Promise<string> {
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const bundle = exportEncoderBundle(options.spec ?? TINY, {
    method: options.method ?? 'random',
    parameters: options.parameters,
    seed: options.seed ?? 0,
    vocabTxt: options.vocabTxt,
  });
  await writeEncoderBundle(new FileArtifactStore(path.dirname(dir)), path.basename(dir), bundle);
  return dir;
}

/**
 * Separable fixture: noise plus a bright blob; class 1 has a dark horizontal bar through the
 * blob, class 0 does not. Deterministic per seed.
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
    for (let y = cy - 8; y < cy + 8; y++)
      for (let x = cx - 8; x < cx + 8; x++) image.data[y * 48 + x] = label && Math.abs(y - cy) < 3 ? 0.1 : 0.9;
    images.push(image);
    labels.push(label);
  }
  return { images, labels };
}

/** Writes fixture images as PNGs with a generic label CSV (image, positive, patient). */
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

/** The tiny encoder trained as a classifier on the separable fixture, written as a bundle. */
export async function writeTrainedBundle(dir: string, seed = 0, steps = 40): Promise<string> {
  const step = buildTrainingStep({
    optimizer: { kind: 'adamw', weightDecay: 1e-4 },
    build: (g) => {
      const b = modelBuilder(g, { seed, training: true });
      const out = imageEncoder(b, imageInput(g, TINY.image), TINY.image);
      const logits = linear(b, 'fc', out.features, out.featureDim, 2);
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
    await trainer.trainStep(
      { pixel_values: new ort.Tensor('float32', x, [32, 1, SIZE, SIZE]), y: new ort.Tensor('float32', y, [32, 2]) },
      3e-3,
    );
  }
  const parameters = new Map([...trainer.parameters()].filter(([name]) => name.startsWith(`${SCOPES.image}.`)));
  await trainer.release();
  return writeBundle(dir, { parameters, method: 'fixture' });
}
