import * as dicomParser from 'dicom-parser';
import { grayImage, ImageFormatError, type GrayImage } from './image';
import { checkDeclaredSize, maxImagePixels, type DecodeLimits } from './limits';
import { luminance } from './png';

/** Uncompressed transfer syntaxes (PS3.5 section 10); compressed pixel data needs a codec we do not ship. */
const LITTLE_ENDIAN = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1']);
const BIG_ENDIAN = '1.2.840.10008.1.2.2';

export interface DicomDecodeOptions extends DecodeLimits {
  /** Use the file's first VOI window (default true); otherwise stretch min..max to [0, 1]. */
  applyWindow?: boolean;
}

/**
 * Decodes an uncompressed grayscale (or RGB) DICOM image: modality rescale (slope/intercept),
 * the first VOI LUT window (PS3.3 C.11.2.1.2) and MONOCHROME1 inversion, so bright is always bone.
 */
export function decodeDicom(bytes: Uint8Array, options: DicomDecodeOptions = {}): GrayImage {
  let dataSet: dicomParser.DataSet;
  try {
    dataSet = dicomParser.parseDicom(bytes);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ImageFormatError(`not a readable DICOM file: ${message}`);
  }
  const transferSyntax = dataSet.string('x00020010') ?? '1.2.840.10008.1.2';
  const bigEndian = transferSyntax === BIG_ENDIAN;
  if (!LITTLE_ENDIAN.has(transferSyntax) && !bigEndian) {
    throw new ImageFormatError(
      `DICOM transfer syntax ${transferSyntax} is compressed; convert it to uncompressed first (e.g. dcmdjpeg)`,
    );
  }
  const rows = dataSet.uint16('x00280010');
  const columns = dataSet.uint16('x00280011');
  const bitsAllocated = dataSet.uint16('x00280100') ?? 16;
  const bitsStored = dataSet.uint16('x00280101') ?? bitsAllocated;
  const signed = dataSet.uint16('x00280103') === 1;
  const samples = dataSet.uint16('x00280002') ?? 1;
  const photometric = (dataSet.string('x00280004') ?? 'MONOCHROME2').trim();
  const pixelElement = dataSet.elements.x7fe00010;
  if (!rows || !columns || !pixelElement)
    throw new ImageFormatError('DICOM file has no image (Rows, Columns or PixelData missing)');
  checkDeclaredSize(
    { width: columns, height: rows, field: 'DICOM Rows/Columns' },
    options.maxPixels ?? maxImagePixels(),
  );
  if (bitsAllocated !== 8 && bitsAllocated !== 16)
    throw new ImageFormatError(`DICOM BitsAllocated ${bitsAllocated} is not supported (8 or 16)`);
  const count = rows * columns * samples;
  const bytesPer = bitsAllocated / 8;
  if (pixelElement.length < count * bytesPer)
    throw new ImageFormatError(`DICOM PixelData is shorter than ${rows}x${columns}x${samples} pixels`);

  const view = new DataView(bytes.buffer, bytes.byteOffset + pixelElement.dataOffset, count * bytesPer);
  const raw = new Float64Array(count);
  const shift = 32 - bitsStored;
  for (let i = 0; i < count; i++) {
    let v = bytesPer === 1 ? view.getUint8(i) : view.getUint16(i * 2, !bigEndian);
    v = signed ? (v << shift) >> shift : v & (2 ** bitsStored - 1);
    raw[i] = v;
  }
  const values = samples === 1 ? raw : toLuminance(raw, samples, dataSet.uint16('x00280006') === 1, rows * columns);
  const slope = dataSet.floatString('x00281053') ?? 1;
  const intercept = dataSet.floatString('x00281052') ?? 0;
  for (let i = 0; i < values.length; i++) values[i] = values[i] * slope + intercept;

  const out = grayImage(columns, rows);
  const center = dataSet.floatString('x00281050', 0);
  const width = dataSet.floatString('x00281051', 0);
  if ((options.applyWindow ?? true) && center !== undefined && width !== undefined && width >= 1) {
    applyLinearWindow(values, center, width, out.data);
  } else {
    stretch(values, out.data);
  }
  if (photometric === 'MONOCHROME1') for (let i = 0; i < out.data.length; i++) out.data[i] = 1 - out.data[i];
  return out;
}

/** PS3.3 C.11.2.1.2.1: the "LINEAR" VOI LUT function, mapped to [0, 1]. */
function applyLinearWindow(values: Float64Array, center: number, width: number, out: Float32Array): void {
  const low = center - 0.5 - (width - 1) / 2;
  const high = center - 0.5 + (width - 1) / 2;
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    out[i] = x <= low ? 0 : x > high ? 1 : (x - (center - 0.5)) / (width - 1) + 0.5;
  }
}

function stretch(values: Float64Array, out: Float32Array): void {
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const range = max - min || 1;
  for (let i = 0; i < values.length; i++) out[i] = (values[i] - min) / range;
}

function toLuminance(raw: Float64Array, samples: number, planar: boolean, pixels: number): Float64Array {
  if (samples !== 3) throw new ImageFormatError(`DICOM SamplesPerPixel ${samples} is not supported (1 or 3)`);
  const out = new Float64Array(pixels);
  for (let i = 0; i < pixels; i++) {
    out[i] = planar
      ? luminance(raw[i], raw[pixels + i], raw[2 * pixels + i])
      : luminance(raw[3 * i], raw[3 * i + 1], raw[3 * i + 2]);
  }
  return out;
}
