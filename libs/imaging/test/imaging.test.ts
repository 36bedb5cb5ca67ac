import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '@medsyn/testing';
import {
  centerCropSquare,
  decodeImage,
  encodeGrayPng,
  findPngText,
  grayImage,
  ImageFormatError,
  readPngText,
  resize,
  sniffImageFormat,
} from '../src';

const temp = makeTempDir('imaging');
const dir = temp.dir;
let expected: Record<string, number[][]>;

afterAll(() => temp.remove());

beforeAll(() => {
  execFileSync('/usr/bin/python3', [join(__dirname, 'python', 'make_fixtures.py'), dir]);
  expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
});

function maxAbsDiff(actual: Float32Array, rows: number[][]): number {
  const flat = rows.flat();
  expect(actual.length).toBe(flat.length);
  return Math.max(...flat.map((v, i) => Math.abs(v - actual[i])));
}

describe('decodeImage', () => {
  it.each([
    ['gray8.png', 1e-6],
    ['gray16.png', 1e-6],
    ['rgb.png', 1e-6],
    // jpeg-js and libjpeg (Pillow) use different IDCTs: a level or two of 255 apart.
    ['smooth.jpg', 3 / 255],
    ['mono2.dcm', 1e-6],
    ['mono1_window.dcm', 1e-6],
  ])('decodes %s as Pillow / pydicom do', (name, tolerance) => {
    const image = decodeImage(readFileSync(join(dir, name)));
    expect(image.height).toBe(expected[name].length);
    expect(image.width).toBe(expected[name][0].length);
    expect(maxAbsDiff(image.data, expected[name])).toBeLessThanOrEqual(tolerance);
  });

  it('rejects bytes that are no image, without echoing them', () => {
    expect(() => decodeImage(Buffer.from('patient John Smith'))).toThrow(ImageFormatError);
    expect(() => decodeImage(Buffer.from('patient John Smith'))).toThrow(/unrecognised image format/);
    const truncated = readFileSync(join(dir, 'gray8.png')).subarray(0, 40);
    expect(sniffImageFormat(truncated)).toBe('png');
    expect(() => decodeImage(truncated)).toThrow(ImageFormatError);
  });
});

describe('encodeGrayPng', () => {
  it('round-trips 16-bit pixels and text metadata', () => {
    const image = grayImage(3, 2, Float32Array.from([0, 0.25, 0.5, 0.75, 1, 0.1]));
    const png = encodeGrayPng(image, { bitDepth: 16, text: { seed: '42', prompt_sha256: 'abc' } });
    const back = decodeImage(png);
    expect(
      maxAbsDiff(back.data, [
        [0, 0.25, 0.5],
        [0.75, 1, 0.1],
      ]),
    ).toBeLessThan(1 / 65535);
    expect(readPngText(png)).toEqual({ seed: '42', prompt_sha256: 'abc' });
  });

  it('finds one text value without decoding, as the PNG decoder reads it', () => {
    const png = encodeGrayPng(grayImage(4, 4), {
      text: { Software: 'medsyn', 'medsyn:model_sha256': 'd'.repeat(64), 'medsyn:seed': '42' },
    });
    for (const [keyword, value] of Object.entries(readPngText(png))) expect(findPngText(png, keyword)).toBe(value);
    expect(findPngText(png, 'medsyn:model_sha256')).toBe('d'.repeat(64));
    expect(findPngText(png, 'medsyn:prompt')).toBeUndefined();
    expect(findPngText(png.subarray(0, 40), 'medsyn:seed')).toBeUndefined(); // truncated: no read past the end
  });

  it('writes 8-bit PNGs that Pillow reads back identically', () => {
    const image = grayImage(4, 1, Float32Array.from([0, 0.5, 1, 2]));
    const path = join(dir, 'ours.png');
    writeFileSync(path, encodeGrayPng(image));
    const pillow = execFileSync('/usr/bin/python3', [
      '-c',
      `from PIL import Image; im = Image.open('${path}'); print(im.mode, list(im.getdata()))`,
    ])
      .toString()
      .trim();
    expect(pillow).toBe('L [0, 128, 255, 255]');
  });
});

describe('resize', () => {
  it('matches Pillow bilinear (antialiased) when shrinking and enlarging', () => {
    const image = grayImage(
      40,
      30,
      Float32Array.from({ length: 1200 }, (_, i) => ((i * 7919) % 1000) / 1000),
    );
    const raw = Buffer.from(image.data.buffer).toString('base64');
    for (const [w, h] of [
      [10, 7],
      [64, 50],
    ]) {
      const script = `import base64, json, numpy as np; from PIL import Image
a = np.frombuffer(base64.b64decode('${raw}'), dtype=np.float32).reshape(30, 40)
print(json.dumps(np.asarray(Image.fromarray(a, mode='F').resize((${w}, ${h}), Image.BILINEAR)).tolist()))`;
      const reference = JSON.parse(execFileSync('/usr/bin/python3', ['-c', script], { maxBuffer: 1 << 24 }).toString());
      expect(maxAbsDiff(resize(image, w, h).data, reference)).toBeLessThan(1e-4);
    }
  });

  it('centre-crops the largest square', () => {
    const image = grayImage(4, 2, Float32Array.from([9, 1, 2, 9, 9, 3, 4, 9]));
    expect(Array.from(centerCropSquare(image, 2).data)).toEqual([1, 2, 3, 4]);
  });
});
