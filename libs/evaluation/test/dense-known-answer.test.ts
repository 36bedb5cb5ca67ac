import * as path from 'node:path';
import { grayImage, type GrayImage } from '@medsyn/imaging';
import { makeTempDir } from '@medsyn/testing';
import { encodeImages, openEncoderBundle } from '../src/encoder';
import { trainDetection, trainSegmentation, type FeatureMaps } from '../src/dense-tasks';
import { seededRandom } from '@medsyn/random';
import { writeBundle } from './fixtures';

// A known answer for the dense heads. Each image is pixel noise, U[0, 0.7) outside a square and
// U[0.3, 1) inside it: no single pixel tells which side it is on, the local mean does. The
// "known-good" encoder's maps carry that local mean (the image averaged over each map cell) in
// their first channel and nothing in the others, so the answer is linear in its features. A
// random-init ResNet's filters have weights of both signs summing to about zero: they respond to
// the pixel noise as much as to the mean shift. A head on the known-good maps must therefore
// beat the same head on the random-init maps at every label fraction; if it does not, the heads
// (their training, standardisation or normalisation) are what is wrong, not the encoders.
const SIZE = 64;
const TRAIN = 40;
/** One square size, so that one labelled image shows a detection head every box it will meet. */
const SIDE = 24;

function noisySquares(count: number, seed: number) {
  const rand = seededRandom(seed);
  return Array.from({ length: count }, () => {
    const image = grayImage(SIZE, SIZE);
    const side = SIDE;
    const x0 = Math.floor(rand() * (SIZE - side));
    const y0 = Math.floor(rand() * (SIZE - side));
    const mask = new Uint8Array(SIZE * SIZE);
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++) {
        const inside = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
        mask[y * SIZE + x] = inside ? 1 : 0;
        image.data[y * SIZE + x] = (inside ? 0.3 : 0) + 0.7 * rand();
      }
    return { image, mask, boxes: [{ x: x0, y: y0, width: side, height: side, label: 0 }] };
  });
}

/**
 * The known-good encoder: maps shaped like `like`, channel 0 the image's mean over each cell, the
 * others 0 (noise there would let a head trained on one image memorise it through the noise).
 */
function meanMaps(images: GrayImage[], like: FeatureMaps): FeatureMaps {
  return like.map(({ spec, size }) => {
    const plane = size * size;
    const data = new Float32Array(images.length * spec.channels * plane);
    images.forEach((image, n) => {
      for (let cell = 0; cell < plane; cell++) {
        const [cx, cy] = [cell % size, Math.floor(cell / size)];
        let sum = 0;
        for (let y = cy * spec.stride; y < (cy + 1) * spec.stride; y++)
          for (let x = cx * spec.stride; x < (cx + 1) * spec.stride; x++) sum += image.data[y * SIZE + x]!;
        data[n * spec.channels * plane + cell] = sum / (spec.stride * spec.stride);
      }
    });
    return { spec, size, data };
  });
}

describe('dense heads against a known answer', () => {
  const tmp = makeTempDir('dense-known');
  afterAll(() => tmp.remove());
  const data = noisySquares(TRAIN + 12 + 16, 5);
  const validation = Array.from({ length: 12 }, (_, i) => TRAIN + i);
  const test = Array.from({ length: 16 }, (_, i) => TRAIN + 12 + i);
  const rowsAt = (fraction: number) => ({
    train: Array.from({ length: Math.max(1, Math.round(fraction * TRAIN)) }, (_, i) => i),
    validation,
    test,
  });
  const encoders = (async () => {
    const bundle = await writeBundle(path.join(tmp.dir, 'random'), {
      spec: { image: { architecture: 'resnet18', size: SIZE, width: 4 } },
      seed: 3,
    });
    const encoder = await openEncoderBundle(bundle);
    const random = (
      await encodeImages(
        encoder,
        data.map((d, i) => ({ id: String(i), load: () => d.image })),
        { withMaps: true },
      )
    ).maps!;
    await encoder.release();
    return {
      random,
      knownGood: meanMaps(
        data.map((d) => d.image),
        random,
      ),
    };
  })();
  const options = { seed: 1, epochs: 10 };

  it.each([0.01, 0.1, 1])(
    'segmentation: the known-good encoder beats random init at %p of the labels',
    async (fraction) => {
      const { random, knownGood } = await encoders;
      const masks = data.map((d) => d.mask);
      const good = await trainSegmentation(knownGood, masks, SIZE, rowsAt(fraction), options);
      const baseline = await trainSegmentation(random, masks, SIZE, rowsAt(fraction), options);
      console.log(
        `segmentation ${fraction * 100} %: Dice known-good ${good.dice.toFixed(3)}, random init ${baseline.dice.toFixed(3)}`,
      );
      expect(good.dice).toBeGreaterThan(0.8);
      expect(good.dice).toBeGreaterThan(baseline.dice);
    },
  );

  it.each([0.01, 0.1, 1])(
    'detection: the known-good encoder beats random init at %p of the labels',
    async (fraction) => {
      const { random, knownGood } = await encoders;
      const boxes = data.map((d) => d.boxes);
      const good = await trainDetection(knownGood, boxes, 1, rowsAt(fraction), options);
      const baseline = await trainDetection(random, boxes, 1, rowsAt(fraction), options);
      console.log(
        `detection ${fraction * 100} %: mAP@[.40:.75] known-good ${good.map_40_75.toFixed(3)}, random init ${baseline.map_40_75.toFixed(3)}`,
      );
      expect(good.map_40_75).toBeGreaterThan(0.5);
      expect(good.map_40_75).toBeGreaterThan(baseline.map_40_75);
    },
  );

  it("a head does not depend on the scale and offset of the encoder's channels (maps are standardised)", async () => {
    const { knownGood } = await encoders;
    const masks = data.map((d) => d.mask);
    const rescaled = knownGood.map((m) => ({ ...m, data: Float32Array.from(m.data, (v) => 1000 * v - 300) }));
    const [a, b] = [
      await trainSegmentation(knownGood, masks, SIZE, rowsAt(0.01), options),
      await trainSegmentation(rescaled, masks, SIZE, rowsAt(0.01), options),
    ];
    expect(Math.abs(a.dice - b.dice)).toBeLessThan(0.01);
  });
});
