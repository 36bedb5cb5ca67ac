import { decode as decodePngRaw, encode as encodePngRaw } from 'fast-png';
import { grayImage, ImageFormatError, type GrayImage } from './image';
import { checkPixelLimit, maxImagePixels, type DecodeLimits } from './limits';

export interface PngEncodeOptions {
  /** 8 (default) or 16 bits per pixel. */
  bitDepth?: 8 | 16;
  /** tEXt metadata (keys are Latin-1 keywords of 1-79 characters, PNG spec section 11.3.4). */
  text?: Record<string, string>;
}

/** Encodes a grayscale PNG; values are clamped to [0, 1] and rounded to the bit depth. */
export function encodeGrayPng(image: GrayImage, options: PngEncodeOptions = {}): Uint8Array {
  const depth = options.bitDepth ?? 8;
  const max = depth === 16 ? 65535 : 255;
  const pixels = depth === 16 ? new Uint16Array(image.data.length) : new Uint8Array(image.data.length);
  for (let i = 0; i < image.data.length; i++) {
    const v = image.data[i];
    pixels[i] = Math.round((v < 0 ? 0 : v > 1 ? 1 : v) * max);
  }
  for (const key of Object.keys(options.text ?? {})) {
    if (!/^[\x20-\x7e]{1,79}$/.test(key))
      throw new ImageFormatError(`PNG text keyword must be 1-79 printable ASCII characters: "${key}"`);
  }
  return encodePngRaw({
    width: image.width,
    height: image.height,
    data: pixels,
    depth,
    channels: 1,
    text: options.text,
  });
}

/** The tEXt metadata of a PNG. */
export function readPngText(bytes: Uint8Array, limits: DecodeLimits = {}): Record<string, string> {
  checkPixelLimit(bytes, 'png', limits.maxPixels ?? maxImagePixels());
  return decodePngRaw(bytes).text ?? {};
}

/**
 * One tEXt value of a PNG, found by walking its chunks (length, type, data, CRC; PNG spec 5.3)
 * without inflating the pixels: a full decode costs milliseconds per image only to read a digest.
 */
export function findPngText(png: Uint8Array, keyword: string): string | undefined {
  const bytes = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  for (let offset = 8; offset + 12 <= bytes.length;) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    const data = offset + 8;
    if (type === 'IEND' || data + length > bytes.length) return undefined;
    if (type === 'tEXt') {
      const separator = bytes.indexOf(0, data);
      if (separator > data && separator < data + length && bytes.toString('latin1', data, separator) === keyword)
        return bytes.toString('latin1', separator + 1, data + length);
    }
    offset = data + length + 4;
  }
  return undefined;
}

/** Decodes any PNG (gray, gray+alpha, RGB, RGBA, palette; 1-16 bits) to luminance. */
export function decodePng(bytes: Uint8Array, limits: DecodeLimits = {}): GrayImage {
  checkPixelLimit(bytes, 'png', limits.maxPixels ?? maxImagePixels());
  let png;
  try {
    png = decodePngRaw(bytes);
  } catch (error) {
    throw new ImageFormatError(`not a readable PNG: ${(error as Error).message}`);
  }
  const { width, height, channels, depth } = png;
  const max = 2 ** depth - 1;
  const out = grayImage(width, height);
  if (png.palette) {
    const palette = png.palette;
    for (let i = 0; i < width * height; i++) {
      const [r, g, b] = palette[png.data[i]];
      out.data[i] = luminance(r, g, b) / 255;
    }
    return out;
  }
  const colour = channels >= 3;
  for (let i = 0, p = 0; i < width * height; i++, p += channels) {
    const v = colour ? luminance(png.data[p], png.data[p + 1], png.data[p + 2]) : png.data[p];
    out.data[i] = v / max;
  }
  return out;
}

/** ITU-R BT.601 luma, the weights PIL's convert('L') uses. */
export function luminance(r: number, g: number, b: number): number {
  return 0.299 * r + 0.587 * g + 0.114 * b;
}
