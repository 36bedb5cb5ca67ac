import { seededRandom } from '@medsyn/random';
import {
  adjustBrightnessContrast,
  affine,
  augmentRadiograph,
  brightnessContrastJitter,
  grayImage,
  randomAffine,
  randomResizedCrop,
  resize,
  type GrayImage,
} from '../src';

/** value = x / (width - 1): a horizontal ramp, so a crop's horizontal extent shows in its values. */
function ramp(width: number, height: number): GrayImage {
  return grayImage(
    width,
    height,
    Float32Array.from({ length: width * height }, (_, i) => (i % width) / (width - 1)),
  );
}

const range = (img: GrayImage) => [Math.min(...img.data), Math.max(...img.data)];
const mean = (img: GrayImage) => img.data.reduce((a, b) => a + b, 0) / img.data.length;

describe('augmentations', () => {
  it('are fixed by the seed and differ between seeds', () => {
    const image = ramp(40, 30);
    const a = augmentRadiograph(image, 16, seededRandom(7));
    const b = augmentRadiograph(image, 16, seededRandom(7));
    const c = augmentRadiograph(image, 16, seededRandom(8));
    expect(a.width).toBe(16);
    expect(a.height).toBe(16);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(Array.from(a.data)).not.toEqual(Array.from(c.data));
    const [low, high] = range(a);
    expect(low).toBeGreaterThanOrEqual(0);
    expect(high).toBeLessThanOrEqual(1);
  });

  it('random resized crop: whole image at scale 1 and the image ratio, a quarter of the area at scale 0.25', () => {
    const image = ramp(32, 32);
    const whole = randomResizedCrop(image, 16, seededRandom(1), { scale: [1, 1], ratio: [1, 1] });
    expect(Array.from(whole.data)).toEqual(Array.from(resize(image, 16, 16).data));
    for (let seed = 0; seed < 5; seed++) {
      const part = randomResizedCrop(image, 16, seededRandom(seed), { scale: [0.25, 0.25], ratio: [1, 1] });
      const [low, high] = range(part);
      // A 16 px wide crop of the ramp spans about half its values.
      expect(high - low).toBeGreaterThan(0.4);
      expect(high - low).toBeLessThan(0.55);
    }
  });

  it('affine: identity leaves the image, a shift moves it, a quarter turn rotates about the centre', () => {
    const image = grayImage(5, 5);
    image.data[1 * 5 + 3] = 1; // (x 3, y 1)
    expect(Array.from(affine(image, 0, 0, 0, 1).data)).toEqual(Array.from(image.data));
    expect(affine(image, 0, -2, 1, 1).data[2 * 5 + 1]).toBeCloseTo(1, 6);
    // Centre (2, 2); (3, 1) is offset (1, -1); a quarter turn (x' = -y, y' = x in image coordinates) gives (1, 1) -> (3, 3).
    const turned = affine(image, Math.PI / 2, 0, 0, 1);
    expect(turned.data[3 * 5 + 3]).toBeCloseTo(1, 5);
    expect(turned.data.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    // Zoom 2 about the centre: the pixel's offset doubles to (4, 0).
    expect(affine(image, 0, 0, 0, 2).data[0 * 5 + 4]).toBeCloseTo(1, 5);
  });

  it('random affine stays small: a mild transform keeps most of the image', () => {
    const image = grayImage(32, 32, new Float32Array(32 * 32).fill(0.5));
    const out = randomAffine(image, seededRandom(3), { degrees: 10, translate: 0.05, scale: [0.95, 1.05] });
    expect(mean(out)).toBeGreaterThan(0.4);
  });

  it('brightness scales values, contrast blends with the mean, results stay in [0, 1]', () => {
    const image = ramp(10, 2);
    const darker = adjustBrightnessContrast(image, 0.5, 1);
    expect(darker.data[9]).toBeCloseTo(0.5, 6);
    const flat = adjustBrightnessContrast(image, 1, 0);
    expect(range(flat)[1] - range(flat)[0]).toBeLessThan(1e-6);
    expect(flat.data[0]).toBeCloseTo(mean(image), 6);
    const strong = adjustBrightnessContrast(image, 2, 2);
    expect(range(strong)).toEqual([0, 1]);
    const jittered = brightnessContrastJitter(image, seededRandom(5), { brightness: 0.4, contrast: 0.4 });
    expect(Array.from(jittered.data)).not.toEqual(Array.from(image.data));
  });
});
