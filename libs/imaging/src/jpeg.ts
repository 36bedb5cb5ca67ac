import * as jpeg from 'jpeg-js';
import { grayImage, ImageFormatError, type GrayImage } from './image';
import { checkPixelLimit, maxImagePixels, type DecodeLimits } from './limits';
import { luminance } from './png';

/** jpeg-js's own guards, behind our header check: a last line against decompression bombs. */
const MAX_RESOLUTION_MP = 100;
const MAX_MEMORY_MB = 1024;

/** Decodes a baseline or progressive JPEG to luminance. */
export function decodeJpeg(bytes: Uint8Array, limits: DecodeLimits = {}): GrayImage {
  checkPixelLimit(bytes, 'jpeg', limits.maxPixels ?? maxImagePixels());
  let raw;
  try {
    raw = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: true,
      maxResolutionInMP: MAX_RESOLUTION_MP,
      maxMemoryUsageInMB: MAX_MEMORY_MB,
    });
  } catch (error) {
    throw new ImageFormatError(`not a readable JPEG: ${(error as Error).message}`);
  }
  const out = grayImage(raw.width, raw.height);
  for (let i = 0, p = 0; i < out.data.length; i++, p += 4) {
    out.data[i] = luminance(raw.data[p], raw.data[p + 1], raw.data[p + 2]) / 255;
  }
  return out;
}
