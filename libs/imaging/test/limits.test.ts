import * as jpeg from 'jpeg-js';
import {
  decodeDicom,
  decodeImage,
  DEFAULT_MAX_IMAGE_PIXELS,
  declaredImageSize,
  encodeGrayPng,
  grayImage,
  ImageTooLargeError,
  maxImagePixels,
  readPngText,
} from '../src';

/** A valid 4x4 PNG whose IHDR is then rewritten to declare width x height (the pixel data stays 4x4). */
function pngDeclaring(width: number, height: number): Uint8Array {
  const bytes = Uint8Array.from(encodeGrayPng(grayImage(4, 4)));
  const view = new DataView(bytes.buffer);
  view.setUint32(16, width);
  view.setUint32(20, height);
  return bytes;
}

/** A valid 8x8 JPEG whose SOF0 is then rewritten to declare width x height. */
function jpegDeclaring(width: number, height: number): Uint8Array {
  const bytes = Uint8Array.from(
    jpeg.encode({ width: 8, height: 8, data: new Uint8Array(8 * 8 * 4).fill(128) }, 90).data,
  );
  for (let i = 2; i < bytes.length; i++) {
    if (bytes[i] === 0xff && bytes[i + 1] === 0xc0) {
      bytes.set([height >> 8, height & 255, width >> 8, width & 255], i + 5);
      return bytes;
    }
  }
  throw new Error('no SOF0');
}

/** A minimal explicit-VR little-endian DICOM file: rows x columns of 8-bit pixels (PS3.10 section 7). */
function dicom(rows: number, columns: number, pixelBytes = rows * columns): Uint8Array {
  const parts: number[] = [...new Array(128).fill(0), ...Buffer.from('DICM')];
  const short = (group: number, element: number, vr: string, value: number[]) => {
    parts.push(
      group & 255,
      group >> 8,
      element & 255,
      element >> 8,
      ...Buffer.from(vr),
      value.length & 255,
      value.length >> 8,
      ...value,
    );
  };
  const ts = [...Buffer.from('1.2.840.10008.1.2.1'), 0];
  short(0x0002, 0x0010, 'UI', ts);
  short(0x0028, 0x0010, 'US', [rows & 255, rows >> 8]);
  short(0x0028, 0x0011, 'US', [columns & 255, columns >> 8]);
  short(0x0028, 0x0100, 'US', [8, 0]);
  const n = pixelBytes + (pixelBytes % 2);
  parts.push(0xe0, 0x7f, 0x10, 0x00, ...Buffer.from('OB'), 0, 0, n & 255, (n >> 8) & 255, (n >> 16) & 255, n >>> 24);
  return Uint8Array.from([...parts, ...new Array(n).fill(100)]);
}

describe('the pixel limit', () => {
  it('reads the declared size from the PNG IHDR, the JPEG SOF and the DICOM Rows/Columns', () => {
    expect(declaredImageSize(pngDeclaring(12000, 9000), 'png')).toEqual({
      width: 12000,
      height: 9000,
      field: 'PNG IHDR',
    });
    expect(declaredImageSize(jpegDeclaring(3000, 2000), 'jpeg')).toEqual({
      width: 3000,
      height: 2000,
      field: 'JPEG SOF',
    });
    expect(declaredImageSize(dicom(6, 5), 'dicom')).toEqual({ width: 5, height: 6, field: 'DICOM Rows/Columns' });
  });

  it('refuses a 12000x12000 PNG of a few bytes from its header, naming the field, before decompressing', () => {
    const bomb = pngDeclaring(12000, 12000);
    expect(bomb.length).toBeLessThan(200);
    expect(() => decodeImage(bomb)).toThrow(ImageTooLargeError);
    expect(() => decodeImage(bomb)).toThrow(
      /PNG IHDR declares 12000x12000 pixels \(144\.0 MP\), over the limit of 64\.0 MP/,
    );
    expect(() => readPngText(bomb)).toThrow(ImageTooLargeError);
  });

  it('refuses an oversized JPEG and DICOM the same way', () => {
    expect(() => decodeImage(jpegDeclaring(20000, 20000))).toThrow(/JPEG SOF declares 20000x20000/);
    expect(() => decodeDicom(dicom(40, 40), { maxPixels: 1000 })).toThrow(/DICOM Rows\/Columns declares 40x40 pixels/);
  });

  it('decodes images at or under the limit; the limit is an option and MAX_IMAGE_PIXELS', () => {
    expect(decodeImage(encodeGrayPng(grayImage(10, 10)), { maxPixels: 100 })).toMatchObject({ width: 10, height: 10 });
    expect(() => decodeImage(encodeGrayPng(grayImage(10, 11)), { maxPixels: 100 })).toThrow(ImageTooLargeError);
    expect(decodeDicom(dicom(6, 5))).toMatchObject({ width: 5, height: 6 });
    expect(maxImagePixels({})).toBe(DEFAULT_MAX_IMAGE_PIXELS);
    expect(maxImagePixels({ MAX_IMAGE_PIXELS: '1000' })).toBe(1000);
    expect(() => maxImagePixels({ MAX_IMAGE_PIXELS: 'lots' })).toThrow(/MAX_IMAGE_PIXELS must be a positive integer/);
  });
});
