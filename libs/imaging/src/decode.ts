import { decodeDicom } from './dicom';
import { ImageFormatError, type GrayImage } from './image';
import { decodeJpeg } from './jpeg';
import { type DecodeLimits } from './limits';
import { decodePng } from './png';

export type ImageFormat = 'png' | 'jpeg' | 'dicom';

/** Recognises a file by its signature, not its name: PNG, JPEG, or DICOM ("DICM" at byte 128). */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47)
    return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d)
    return 'dicom';
  return undefined;
}

/**
 * Decodes a PNG, JPEG or DICOM file to a grayscale image in [0, 1]. An image whose header declares
 * more than the pixel limit is refused (ImageTooLargeError) before anything is decompressed.
 */
export function decodeImage(bytes: Uint8Array, limits: DecodeLimits = {}): GrayImage {
  const format = sniffImageFormat(bytes);
  switch (format) {
    case 'png':
      return decodePng(bytes, limits);
    case 'jpeg':
      return decodeJpeg(bytes, limits);
    case 'dicom':
      return decodeDicom(bytes, limits);
    default:
      throw new ImageFormatError('unrecognised image format (expected PNG, JPEG or DICOM)');
  }
}
