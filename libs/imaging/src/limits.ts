import * as dicomParser from 'dicom-parser';
import { ImageFormatError } from './image';

/**
 * Default largest image we decode: 64 megapixels, eight times a large digital radiograph (about
 * 3000x3000). A 12000x12000 PNG of 140 KB would otherwise inflate to 0.9 GB. `MAX_IMAGE_PIXELS`
 * in the environment changes it for a whole process.
 */
export const DEFAULT_MAX_IMAGE_PIXELS = 64_000_000;

/** The image is larger than the pixel limit; raised from its header, before any pixel is decoded. */
export class ImageTooLargeError extends ImageFormatError {
  override name = 'ImageTooLargeError';
}

/** The pixel limit: `MAX_IMAGE_PIXELS` when set to a positive integer, otherwise the default. */
export function maxImagePixels(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.MAX_IMAGE_PIXELS;
  if (raw === undefined || raw === '') return DEFAULT_MAX_IMAGE_PIXELS;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new ImageFormatError(`MAX_IMAGE_PIXELS must be a positive integer, got "${raw}"`);
  return value;
}

/** Options every decoder takes. */
export interface DecodeLimits {
  /** Largest width x height accepted (default: maxImagePixels()). */
  maxPixels?: number;
}

/** Width and height as the file's header declares them, and the header field they come from. */
export interface DeclaredSize {
  width: number;
  height: number;
  field: string;
}

/** PNG spec section 11.2.2: IHDR is the first chunk; width and height are big-endian at bytes 16 and 20. */
function pngSize(bytes: Uint8Array): DeclaredSize | undefined {
  if (bytes.length < 24) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20), field: 'PNG IHDR' };
}

/** ITU T.81 B.2.2: the first SOFn marker (C0-CF except DHT C4, JPG C8, DAC CC) has height then width. */
function jpegSize(bytes: Uint8Array): DeclaredSize | undefined {
  let i = 2;
  while (i + 9 < bytes.length) {
    if (bytes[i] !== 0xff) return undefined;
    const marker = bytes[i + 1]!;
    if (marker === 0xff) {
      i++;
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    const length = (bytes[i + 2]! << 8) | bytes[i + 3]!;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return {
        height: (bytes[i + 5]! << 8) | bytes[i + 6]!,
        width: (bytes[i + 7]! << 8) | bytes[i + 8]!,
        field: 'JPEG SOF',
      };
    }
    if (marker === 0xda || length < 2) return undefined;
    i += 2 + length;
  }
  return undefined;
}

/** DICOM (0028,0010) Rows and (0028,0011) Columns, read without touching the pixel data. */
function dicomSize(bytes: Uint8Array): DeclaredSize | undefined {
  let dataSet: dicomParser.DataSet;
  try {
    dataSet = dicomParser.parseDicom(bytes, { untilTag: 'x7fe00010' });
  } catch {
    return undefined;
  }
  const rows = dataSet.uint16('x00280010');
  const columns = dataSet.uint16('x00280011');
  if (rows === undefined || columns === undefined) return undefined;
  return { width: columns, height: rows, field: 'DICOM Rows/Columns' };
}

/** The size a PNG, JPEG or DICOM header declares; undefined when there is no readable header (the decoder then says why). */
export function declaredImageSize(bytes: Uint8Array, format: 'png' | 'jpeg' | 'dicom'): DeclaredSize | undefined {
  return format === 'png' ? pngSize(bytes) : format === 'jpeg' ? jpegSize(bytes) : dicomSize(bytes);
}

/** Throws ImageTooLargeError, naming the header field, when the declared size is over `maxPixels`. */
export function checkPixelLimit(bytes: Uint8Array, format: 'png' | 'jpeg' | 'dicom', maxPixels: number): void {
  const size = declaredImageSize(bytes, format);
  if (size) checkDeclaredSize(size, maxPixels);
}

/** Throws ImageTooLargeError when a header's width x height is over `maxPixels`. */
export function checkDeclaredSize(size: DeclaredSize, maxPixels: number): void {
  const pixels = size.width * size.height;
  if (pixels > maxPixels) {
    const mp = (n: number) => `${(n / 1e6).toFixed(1)} MP`;
    throw new ImageTooLargeError(
      `${size.field} declares ${size.width}x${size.height} pixels (${mp(pixels)}), over the limit of ${mp(maxPixels)} (MAX_IMAGE_PIXELS); refused before decoding`,
    );
  }
}
