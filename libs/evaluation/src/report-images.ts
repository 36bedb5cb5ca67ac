// Images for the self-contained HTML report, as PNG data URIs.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EvaluationConfigError } from '@medsyn/config';
import type { EvaluationResults } from '@medsyn/evaluation-report';
import { centerCropSquare, encodeGrayPng, grayImage } from '@medsyn/imaging';
import { loadImage } from './downstream-datasets';

/** A square gray image (values in [0, 1]) as an 8-bit PNG data URI, for self-contained reports. */
export function pngDataUri(size: number, values: ArrayLike<number>): string {
  const png = encodeGrayPng(grayImage(size, size, Float32Array.from(values)));
  return `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
}

/** The first images (by name) of each sample-grid folder, centre-cropped to 96 px. */
export function sampleGrids(folders: Record<string, string>, count = 8): EvaluationResults['grids'] {
  const grids: EvaluationResults['grids'] = {};
  for (const [name, folder] of Object.entries(folders)) {
    if (!fs.existsSync(folder)) throw new EvaluationConfigError(`sample_grids.${name}`, `folder not found: ${folder}`);
    const files = fs
      .readdirSync(folder)
      .filter((f) => /\.(png|jpe?g|dcm)$/i.test(f))
      .sort()
      .slice(0, count);
    grids[name] = files.map((file) => ({
      file,
      png: pngDataUri(96, centerCropSquare(loadImage({ id: file, path: path.join(folder, file) }), 96).data),
    }));
  }
  return grids;
}
