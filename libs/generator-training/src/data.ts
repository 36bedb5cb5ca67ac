import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'csv-parse/sync';
import { Anonymizer } from '@medsyn/deid';
import { centerCropSquare, decodeImage } from '@medsyn/imaging';

/** One training pair: a radiograph in the model's pixel space and its generator prompt. */
export interface GeneratorExample {
  id: string;
  /** imageSize x imageSize intensities scaled to [-1, 1] (the diffusion model's data range). */
  pixels: Float32Array;
  /** The anonymizer's prompt of the image's text ('' when it has none). */
  prompt: string;
  /** Where the image comes from, for the model card's attributions. */
  source: { filename: string; licence: string; url: string; doi: string };
}

/**
 * Licences that allow training and redistributing a derived model with attribution only
 * (no NonCommercial, NoDerivatives or ShareAlike terms): the images the bundled default uses.
 */
export const PERMISSIVE_LICENCES = ['CC BY', 'CC BY 2.0', 'CC BY 3.0', 'CC BY 4.0', 'Apache-2.0', 'MIT'];

export interface CovidCxrOptions {
  /** Side of the square images (centre-cropped, then resized). */
  size: number;
  /** Keep rows whose licence passes (default: PERMISSIVE_LICENCES). */
  licence?: (licence: string) => boolean;
  /** Keep rows whose file name passes (e.g. a training split). */
  include?: (filename: string) => boolean;
  /** Views kept (default frontal: PA, AP, AP Supine). */
  views?: string[];
}

/**
 * The report text of a covid-cxr row: view and finding first (so they survive the 77-token
 * prompt cut), then the clinical notes. The dataset has no radiology reports, and only a few
 * permissively licensed images have notes, so the metadata is what tells images apart.
 */
export function covidCxrReportText(row: Record<string, string>): string {
  const raw = (row.finding ?? '').trim();
  // No "Finding:" label: the anonymizer would read it as a FINDINGS heading and drop the view.
  const finding = raw === 'No Finding' ? 'no acute cardiopulmonary finding' : raw && raw !== 'todo' ? raw : '';
  const first = `${(row.view ?? '').trim() || 'Frontal'} chest radiograph${finding ? `, ${finding}` : ''}.`;
  return [first, (row.clinical_notes ?? '').trim()].filter(Boolean).join(' ');
}

/**
 * Training pairs from the covid-cxr layout (`metadata.csv` + `images/`, see shared/data/README.md):
 * frontal radiographs with their report text (covidCxrReportText), de-identified and made into prompts by the same
 * anonymizer the pipeline uses, so the generator learns the prompts it will be given.
 */
export async function loadCovidCxrExamples(root: string, options: CovidCxrOptions): Promise<GeneratorExample[]> {
  const metadataFile = path.join(root, 'metadata.csv');
  if (!fs.existsSync(metadataFile)) throw new Error(`no metadata.csv in ${root}`);
  const rows = parse(fs.readFileSync(metadataFile), { columns: true, skip_empty_lines: true }) as Record<
    string,
    string
  >[];
  const licenceOk = options.licence ?? ((l: string) => PERMISSIVE_LICENCES.includes(l.trim()));
  const views = new Set(options.views ?? ['PA', 'AP', 'AP Supine']);
  const anonymizer = new Anonymizer();
  const examples: GeneratorExample[] = [];
  for (const row of rows) {
    const filename = row.filename ?? '';
    if (!licenceOk(row.license ?? '') || !views.has(row.view ?? '') || (options.include && !options.include(filename)))
      continue;
    const image = centerCropSquare(
      decodeImage(fs.readFileSync(path.join(root, row.folder || 'images', filename))),
      options.size,
    );
    const pixels = new Float32Array(image.data.length);
    for (let i = 0; i < pixels.length; i++) pixels[i] = image.data[i]! * 2 - 1;
    const prompt = (await anonymizer.anonymize({ id: filename, text: covidCxrReportText(row) })).prompt.text;
    examples.push({
      id: filename,
      pixels,
      prompt,
      source: { filename, licence: (row.license ?? '').trim(), url: row.url ?? '', doi: row.doi ?? '' },
    });
  }
  return examples;
}
