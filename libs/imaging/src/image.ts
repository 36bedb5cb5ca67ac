/**
 * A grayscale radiograph in memory: row-major intensities in [0, 1] (0 = black).
 * Every decoder produces this and every encoder and transform consumes it, so the
 * code past the decoder never cares which file format an image came from.
 */
export interface GrayImage {
  width: number;
  height: number;
  data: Float32Array;
}

/** A decoding or format problem, with a message that never contains pixel or patient data. */
export class ImageFormatError extends Error {
  override name = 'ImageFormatError';
}

export function grayImage(width: number, height: number, data?: Float32Array): GrayImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new ImageFormatError(`image size must be positive integers, got ${width}x${height}`);
  }
  const pixels = data ?? new Float32Array(width * height);
  if (pixels.length !== width * height) {
    throw new ImageFormatError(`image data has ${pixels.length} values, expected ${width}x${height}`);
  }
  return { width, height, data: pixels };
}
