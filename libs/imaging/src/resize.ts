import { grayImage, type GrayImage } from './image';

/**
 * Resizes with a triangle (bilinear) filter whose support widens with the scale factor when
 * shrinking, the way PIL's Image.resize(BILINEAR) antialiases: a 1024 px radiograph shrunk to
 * 128 px averages every source pixel instead of sampling one in eight.
 */
export function resize(image: GrayImage, width: number, height: number): GrayImage {
  const horizontal = resampleAxis(image.data, image.width, image.height, width, true);
  const out = resampleAxis(horizontal, width, image.height, height, false);
  return grayImage(width, height, out);
}

function resampleAxis(
  src: Float32Array,
  srcWidth: number,
  srcHeight: number,
  size: number,
  alongX: boolean,
): Float32Array {
  const inSize = alongX ? srcWidth : srcHeight;
  const lines = alongX ? srcHeight : srcWidth;
  const out = new Float32Array(alongX ? size * srcHeight : srcWidth * size);
  const scale = inSize / size;
  const support = Math.max(1, scale);
  for (let o = 0; o < size; o++) {
    const center = (o + 0.5) * scale;
    const first = Math.max(0, Math.floor(center - support));
    const last = Math.min(inSize - 1, Math.ceil(center + support));
    const weights: number[] = [];
    let total = 0;
    for (let i = first; i <= last; i++) {
      const w = Math.max(0, 1 - Math.abs((i + 0.5 - center) / support));
      weights.push(w);
      total += w;
    }
    for (let line = 0; line < lines; line++) {
      let acc = 0;
      for (let k = 0; k < weights.length; k++) {
        const i = first + k;
        acc += weights[k] * (alongX ? src[line * srcWidth + i] : src[i * srcWidth + line]);
      }
      out[alongX ? line * size + o : o * srcWidth + line] = acc / total;
    }
  }
  return out;
}

/** The largest centred square, then resized: the usual preprocessing for encoders. */
export function centerCropSquare(image: GrayImage, size: number): GrayImage {
  const side = Math.min(image.width, image.height);
  return resize(
    crop(image, Math.floor((image.width - side) / 2), Math.floor((image.height - side) / 2), side, side),
    size,
    size,
  );
}

/** A rectangle of the image (clamped reads outside it give 0). */
export function crop(image: GrayImage, left: number, top: number, width: number, height: number): GrayImage {
  const out = grayImage(width, height);
  for (let y = 0; y < height; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= image.height) continue;
    for (let x = 0; x < width; x++) {
      const sx = left + x;
      if (sx >= 0 && sx < image.width) out.data[y * width + x] = image.data[sy * image.width + sx];
    }
  }
  return out;
}

/**
 * Encoder input: (value - mean) / std, repeated over `channels` planes (CHW), written into
 * `out` at `offset` so a batch tensor is filled without copies.
 */
export function normalizeInto(
  image: GrayImage,
  out: Float32Array,
  offset: number,
  channels = 1,
  mean = 0.5,
  std = 0.5,
): void {
  const plane = image.width * image.height;
  for (let c = 0; c < channels; c++) {
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) out[base + i] = (image.data[i] - mean) / std;
  }
}
