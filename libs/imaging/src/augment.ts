import type { Random } from '@medsyn/random';
import { grayImage, type GrayImage } from './image';
import { crop, resize } from './resize';

const uniform = (random: Random, low: number, high: number) => low + (high - low) * random();

export interface RandomResizedCropOptions {
  /** Range of the crop's area as a fraction of the image's (torchvision default [0.08, 1]; ConVIRT uses [0.6, 1]). */
  scale?: [number, number];
  /** Range of the crop's aspect ratio width / height (default [3/4, 4/3]). */
  ratio?: [number, number];
}

/**
 * torchvision's RandomResizedCrop: a crop of random area and aspect ratio (log-uniform) at a
 * random place, resized to size x size (antialiased bilinear). After 10 draws that do not fit,
 * the largest centred crop within the ratio range.
 */
export function randomResizedCrop(
  image: GrayImage,
  size: number,
  random: Random,
  options: RandomResizedCropOptions = {},
): GrayImage {
  const [minScale, maxScale] = options.scale ?? [0.08, 1];
  const [minRatio, maxRatio] = options.ratio ?? [3 / 4, 4 / 3];
  const { width, height } = image;
  const area = width * height;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * uniform(random, minScale, maxScale);
    const ratio = Math.exp(uniform(random, Math.log(minRatio), Math.log(maxRatio)));
    const w = Math.round(Math.sqrt(targetArea * ratio));
    const h = Math.round(Math.sqrt(targetArea / ratio));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const top = Math.floor(random() * (height - h + 1));
      const left = Math.floor(random() * (width - w + 1));
      return resize(crop(image, left, top, w, h), size, size);
    }
  }
  const ratio = width / height;
  const [w, h] =
    ratio < minRatio
      ? [width, Math.round(width / minRatio)]
      : ratio > maxRatio
        ? [Math.round(height * maxRatio), height]
        : [width, height];
  return resize(crop(image, Math.floor((width - w) / 2), Math.floor((height - h) / 2), w, h), size, size);
}

export interface AffineOptions {
  /** Rotation drawn from [-degrees, degrees]. */
  degrees?: number;
  /** Shift drawn from [-translate, translate] of the width and height. */
  translate?: number;
  /** Zoom drawn from [min, max]. */
  scale?: [number, number];
}

/**
 * A small random affine transform about the image centre (rotation, translation, zoom), as
 * torchvision's RandomAffine: each output pixel samples the input bilinearly through the inverse
 * transform; outside the input it is 0 (black, as the border of a radiograph).
 */
export function randomAffine(image: GrayImage, random: Random, options: AffineOptions = {}): GrayImage {
  const degrees = options.degrees ?? 10;
  const translate = options.translate ?? 0.05;
  const [minScale, maxScale] = options.scale ?? [0.95, 1.05];
  const angle = (uniform(random, -degrees, degrees) * Math.PI) / 180;
  const tx = Math.round(uniform(random, -translate, translate) * image.width);
  const ty = Math.round(uniform(random, -translate, translate) * image.height);
  return affine(image, angle, tx, ty, uniform(random, minScale, maxScale));
}

/** The affine transform itself: rotate by `angle` radians and zoom by `scale` about the centre, then shift by (tx, ty). */
export function affine(image: GrayImage, angle: number, tx: number, ty: number, scale: number): GrayImage {
  const { width, height, data } = image;
  const out = grayImage(width, height);
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  const cos = Math.cos(angle) / scale;
  const sin = Math.sin(angle) / scale;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // Inverse map: undo the shift, then the rotation and zoom.
      const dx = x - cx - tx;
      const dy = y - cy - ty;
      const sx = cos * dx + sin * dy + cx;
      const sy = -sin * dx + cos * dy + cy;
      out.data[y * width + x] = bilinear(data, width, height, sx, sy);
    }
  }
  return out;
}

function bilinear(data: Float32Array, width: number, height: number, x: number, y: number): number {
  const x0 = Math.floor(x);
  const y0 = Math.floor(y);
  const fx = x - x0;
  const fy = y - y0;
  const at = (xi: number, yi: number) => (xi >= 0 && yi >= 0 && xi < width && yi < height ? data[yi * width + xi] : 0);
  return (
    (at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx) * (1 - fy) +
    (at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx) * fy
  );
}

export interface JitterOptions {
  /** Brightness factor drawn from [1 - brightness, 1 + brightness]. */
  brightness?: number;
  /** Contrast factor drawn from [1 - contrast, 1 + contrast]. */
  contrast?: number;
}

/**
 * torchvision's ColorJitter for grayscale: brightness multiplies every value, contrast blends
 * with the image's mean (v' = mean + c (v - mean)); results clipped to [0, 1].
 */
export function brightnessContrastJitter(image: GrayImage, random: Random, options: JitterOptions = {}): GrayImage {
  const b = uniform(random, 1 - (options.brightness ?? 0.2), 1 + (options.brightness ?? 0.2));
  const c = uniform(random, 1 - (options.contrast ?? 0.2), 1 + (options.contrast ?? 0.2));
  return adjustBrightnessContrast(image, b, c);
}

export function adjustBrightnessContrast(image: GrayImage, brightness: number, contrast: number): GrayImage {
  const out = grayImage(image.width, image.height);
  let mean = 0;
  for (let i = 0; i < image.data.length; i++) mean += Math.min(1, image.data[i] * brightness);
  mean /= image.data.length;
  for (let i = 0; i < image.data.length; i++) {
    const v = Math.min(1, image.data[i] * brightness);
    out.data[i] = Math.min(1, Math.max(0, mean + contrast * (v - mean)));
  }
  return out;
}

export interface AugmentOptions {
  crop?: RandomResizedCropOptions;
  affine?: AffineOptions;
  jitter?: JitterOptions;
}

/** ConVIRT's image augmentations for radiographs: random resized crop, small affine, brightness / contrast jitter. */
export function augmentRadiograph(
  image: GrayImage,
  size: number,
  random: Random,
  options: AugmentOptions = {},
): GrayImage {
  const cropped = randomResizedCrop(image, size, random, { scale: [0.6, 1], ...options.crop });
  return brightnessContrastJitter(randomAffine(cropped, random, options.affine), random, options.jitter);
}
