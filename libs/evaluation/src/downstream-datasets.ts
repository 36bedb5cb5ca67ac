import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'csv-parse/sync';
import { decodeImage, grayImage, type GrayImage } from '@medsyn/imaging';
import type { Box } from '@medsyn/evaluation-report';

/**
 * A dataset file is missing or malformed. Messages name the file, row and column, never cell
 * contents (a cell may hold patient data).
 */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

/** Where an image's segmentation mask comes from. */
export type MaskSource = { kind: 'png'; path: string } | { kind: 'rle'; runs: string[] };

/** One image with whatever annotations its dataset has. */
export interface LabelledImage {
  /** Stable id within the dataset (a file name or the dataset's image id). */
  id: string;
  /** Absolute path of the image file (PNG, JPEG or DICOM). */
  path: string;
  /** Patient id for grouped splits (images of one patient stay in one split). */
  patient?: string;
  /** Multi-label: one 0/1 per class. Multi-class: the class index. */
  labels?: number[];
  classIndex?: number;
  /** Boxes in the image's own pixel coordinates. */
  boxes?: Box[];
  mask?: MaskSource;
}

/** A downstream dataset the encoders are evaluated on: labelled images with masks and boxes where it has them. */
export interface DownstreamDataset {
  name: string;
  /** multi-label: independent 0/1 per class (sigmoid); multi-class: one class per image (softmax). */
  kind: 'multi-label' | 'multi-class';
  classNames: string[];
  /** Names of the box classes (detection). */
  boxClassNames?: string[];
  images: LabelledImage[];
  /** The dataset's own test split, when it defines one (ids). */
  testIds?: Set<string>;
  /** The folder every file of the dataset must be inside (set by importDataset). */
  root?: string;
}

export type UncertaintyPolicy = 'ones' | 'zeros' | 'ignore';

/** Whether `file` is `root` or inside it, by their resolved paths. */
export function isInside(root: string, file: string): boolean {
  const rel = path.relative(path.resolve(root), path.resolve(file));
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

/**
 * Reads a dataset file: a regular file (not a FIFO, device or folder), inside `root` when one is
 * given, also after following symlinks. It is opened non-blocking, so a FIFO is refused instead of
 * stalling the process, and checked with fstat on the opened descriptor, so a swap after the
 * check cannot slip another kind of file in.
 */
export function readDatasetFile(file: string, what: string, root?: string): Buffer {
  if (root !== undefined && !isInside(root, file))
    throw new DatasetError(`${what} ${file} is outside the dataset folder ${root}`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new DatasetError(`${what} not found: ${file}`);
    throw new DatasetError(`${what} ${file} cannot be opened (${code ?? 'error'})`);
  }
  try {
    if (!fs.fstatSync(fd).isFile()) throw new DatasetError(`${what} ${file} is not a regular file`);
    if (root !== undefined && !isInside(fs.realpathSync(root), fs.realpathSync(file)))
      throw new DatasetError(`${what} ${file} is a link to outside the dataset folder ${root}`);
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Whether a dataset folder lies under one of the allowed roots, both as named and after following
 * symlinks (a link inside a root to /etc is refused). A folder that does not exist yet is judged by
 * its name; the import then fails naming it.
 */
export function isAllowedDatasetRoot(root: string, allowed: readonly string[]): boolean {
  const real = (p: string) => (fs.existsSync(p) ? fs.realpathSync(p) : path.resolve(p));
  return allowed.some((a) => isInside(a, root) && isInside(real(a), real(root)));
}

function readText(file: string, what: string, root?: string): string {
  return readDatasetFile(file, what, root).toString('utf8');
}

/** CSV rows as objects keyed by header; a row with another number of fields fails naming its line (never quoting it). */
function readCsv(file: string, what: string, required: string[], root?: string): Record<string, string>[] {
  let rows: Record<string, string>[];
  try {
    rows = parse(readText(file, what, root), { columns: true, skip_empty_lines: true, bom: true }) as Record<
      string,
      string
    >[];
  } catch (error) {
    if (error instanceof DatasetError) throw error;
    const line = (error as { lines?: number }).lines;
    throw new DatasetError(
      `${what} ${file} is not valid CSV${line ? ` (line ${line})` : ''}: ${(error as { code?: string }).code ?? 'parse error'}`,
    );
  }
  const header = rows.length ? Object.keys(rows[0]!) : [];
  // The header is file content: say how many columns there are, never what they are called.
  for (const column of required)
    if (rows.length && !header.includes(column))
      throw new DatasetError(`${what} ${file} has no column "${column}" (line 1 has ${header.length} columns)`);
  if (rows.length === 0) throw new DatasetError(`${what} ${file} has no rows`);
  return rows;
}

/** JSON.parse, failing with the file's name only: V8's SyntaxError quotes the text around the error. */
function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new DatasetError(`${file} is not valid JSON`);
  }
}

function number(value: string | undefined, file: string, row: number, column: string): number {
  const v = Number(value);
  if (value === undefined || value.trim() === '' || !Number.isFinite(v))
    throw new DatasetError(`${file} row ${row}: column "${column}" is not a number`);
  return v;
}

/** The five CheXpert competition observations (Irvin et al. 2019), the usual evaluation set. */
export const CHEXPERT_COMPETITION = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'];

/**
 * CheXpert / MIMIC-CXR-JPG style label CSV (1 positive, 0 negative, -1 uncertain, blank
 * unmentioned = negative). Uncertain labels become 1 (U-Ones), 0 (U-Zeros), or drop the image
 * (ignore). `Path` is resolved against the root, also when it starts with the dataset folder name.
 */
export function importChexpert(
  root: string,
  options: { csv?: string; classes?: string[]; uncertain?: UncertaintyPolicy; frontalOnly?: boolean } = {},
): DownstreamDataset {
  const file = path.join(root, options.csv ?? 'train.csv');
  const classes = options.classes ?? CHEXPERT_COMPETITION;
  const policy = options.uncertain ?? 'ones';
  if (!['ones', 'zeros', 'ignore'].includes(policy))
    throw new DatasetError(`uncertain policy must be ones, zeros or ignore, got "${policy}"`);
  const rows = readCsv(file, 'CheXpert labels', ['Path', ...classes], root);
  const images: LabelledImage[] = [];
  rows.forEach((row, i) => {
    if (options.frontalOnly && row['Frontal/Lateral'] && row['Frontal/Lateral'] !== 'Frontal') return;
    const labels: number[] = [];
    for (const name of classes) {
      const cell = (row[name] ?? '').trim();
      const v = cell === '' ? 0 : Number(cell);
      if (![1, 0, -1].includes(v))
        throw new DatasetError(`${file} row ${i + 2}: column "${name}" must be 1, 0, -1 or blank`);
      if (v === -1 && policy === 'ignore') return;
      labels.push(v === -1 ? (policy === 'ones' ? 1 : 0) : v);
    }
    const rel = row.Path!;
    if (!rel) throw new DatasetError(`${file} row ${i + 2}: column "Path" is empty`);
    // CheXpert's paths start with "CheXpert-v1.0-small/..."; accept a root that is that folder.
    const direct = path.join(root, rel);
    const stripped = path.join(root, rel.split('/').slice(1).join('/'));
    const patient = /patient\d+/.exec(rel)?.[0];
    images.push({ id: rel, path: fs.existsSync(direct) ? direct : stripped, patient, labels });
  });
  return { name: 'chexpert', kind: 'multi-label', classNames: classes, images };
}

/**
 * RSNA Pneumonia Detection: `stage_2_train_labels.csv` (patientId, x, y, width, height, Target),
 * one row per box (Target 0 rows have no box); images `stage_2_train_images/<patientId>.dcm`.
 * Classification label: pneumonia (Target); boxes: class 0 = opacity.
 */
export function importRsna(root: string, options: { csv?: string; images?: string } = {}): DownstreamDataset {
  const file = path.join(root, options.csv ?? 'stage_2_train_labels.csv');
  const rows = readCsv(file, 'RSNA labels', ['patientId', 'x', 'y', 'width', 'height', 'Target'], root);
  const folder = path.join(root, options.images ?? 'stage_2_train_images');
  const byPatient = new Map<string, LabelledImage>();
  rows.forEach((row, i) => {
    const id = row.patientId!;
    if (!id) throw new DatasetError(`${file} row ${i + 2}: column "patientId" is empty`);
    const target = number(row.Target, file, i + 2, 'Target');
    if (target !== 0 && target !== 1) throw new DatasetError(`${file} row ${i + 2}: column "Target" must be 0 or 1`);
    const image = byPatient.get(id) ?? {
      id,
      path: path.join(folder, `${id}.dcm`),
      patient: id,
      labels: [0],
      boxes: [],
    };
    byPatient.set(id, image);
    if (target === 1) {
      image.labels = [1];
      image.boxes!.push({
        x: number(row.x, file, i + 2, 'x'),
        y: number(row.y, file, i + 2, 'y'),
        width: number(row.width, file, i + 2, 'width'),
        height: number(row.height, file, i + 2, 'height'),
        label: 0,
      });
    }
  });
  return {
    name: 'rsna',
    kind: 'multi-label',
    classNames: ['Pneumonia'],
    boxClassNames: ['Lung Opacity'],
    images: [...byPatient.values()],
  };
}

/**
 * SIIM-ACR Pneumothorax: `train-rle.csv` (ImageId, EncodedPixels), several rows per image for
 * several regions, "-1" for none; DICOMs anywhere under `images` (the Kaggle layout nests them
 * by study and series), found by file name `<ImageId>.dcm`.
 */
export function importSiim(root: string, options: { csv?: string; images?: string } = {}): DownstreamDataset {
  const file = path.join(root, options.csv ?? 'train-rle.csv');
  const rows = readCsv(file, 'SIIM run-length masks', ['ImageId'], root);
  // The Kaggle file's header has a leading space: " EncodedPixels".
  const rleColumn = Object.keys(rows[0]!).find((k) => k.trim() === 'EncodedPixels');
  if (!rleColumn) throw new DatasetError(`SIIM run-length masks ${file} has no column "EncodedPixels"`);
  const folder = path.join(root, options.images ?? 'dicom-images-train');
  const files = new Map<string, string>();
  for (const entry of fs.existsSync(folder) ? (fs.readdirSync(folder, { recursive: true }) as string[]) : []) {
    if (entry.endsWith('.dcm')) files.set(path.basename(entry, '.dcm'), path.join(folder, entry));
  }
  const byImage = new Map<string, LabelledImage & { mask: { kind: 'rle'; runs: string[] } }>();
  rows.forEach((row, i) => {
    const id = row.ImageId!;
    if (!id) throw new DatasetError(`${file} row ${i + 2}: column "ImageId" is empty`);
    const rle = (row[rleColumn] ?? '').trim();
    if (rle !== '-1' && !/^\d+( \d+)*$/.test(rle))
      throw new DatasetError(`${file} row ${i + 2}: column "EncodedPixels" must be -1 or run-length pairs`);
    if (rle !== '-1' && rle.split(' ').length % 2 !== 0)
      throw new DatasetError(`${file} row ${i + 2}: column "EncodedPixels" has an odd number of values`);
    const image = byImage.get(id) ?? {
      id,
      path: files.get(id) ?? path.join(folder, `${id}.dcm`),
      labels: [0],
      mask: { kind: 'rle' as const, runs: [] },
    };
    byImage.set(id, image);
    if (rle !== '-1') {
      image.mask.runs.push(rle);
      image.labels = [1];
    }
  });
  return { name: 'siim', kind: 'multi-label', classNames: ['Pneumothorax'], images: [...byImage.values()] };
}

/**
 * SIIM's relative run-length code (the challenge's mask_functions.rle2mask): pairs of (gap since
 * the previous run's end, run length) over the column-major pixel order. Several encodings union.
 */
export function decodeSiimRle(runs: string[], width: number, height: number): Uint8Array {
  const mask = new Uint8Array(width * height);
  for (const rle of runs) {
    const values = rle.trim().split(/\s+/).map(Number);
    let position = 0;
    for (let i = 0; i + 1 < values.length; i += 2) {
      position += values[i]!;
      const end = position + values[i + 1]!;
      if (end > width * height) throw new DatasetError(`run-length mask runs past the ${width}x${height} image`);
      for (let p = position; p < end; p++) {
        // Column-major p = x * height + y.
        mask[(p % height) * width + Math.floor(p / height)] = 1;
      }
      position = end;
    }
  }
  return mask;
}

/**
 * COVIDx: `train.txt` / `test.txt`, space-separated (patient id, filename, class, source), images
 * in `train/` and `test/`. Multi-class; the dataset's test list is kept as its test split.
 */
export function importCovidx(root: string, options: { classes?: string[] } = {}): DownstreamDataset {
  const entries: { image: LabelledImage; className: string }[] = [];
  const testIds = new Set<string>();
  for (const split of ['train', 'test']) {
    const file = path.join(root, `${split}.txt`);
    readText(file, `COVIDx ${split} list`, root)
      .split('\n')
      .forEach((line, i) => {
        if (!line.trim()) return;
        const fields = line.trim().split(/\s+/);
        if (fields.length < 3)
          throw new DatasetError(
            `${file} line ${i + 1}: expected "patient filename class [source]", got ${fields.length} fields`,
          );
        const [patient, filename, className] = fields as [string, string, string];
        const id = `${split}/${filename}`;
        if (split === 'test') testIds.add(id);
        entries.push({ image: { id, path: path.join(root, split, filename), patient }, className });
      });
  }
  const classNames = options.classes ?? [...new Set(entries.map((e) => e.className))].sort();
  for (const { image, className } of entries) {
    image.classIndex = classNames.indexOf(className);
    if (image.classIndex < 0) throw new DatasetError(`COVIDx image ${image.id}: class not in ${classNames.join(', ')}`);
  }
  return { name: 'covidx', kind: 'multi-class', classNames, images: entries.map((e) => e.image), testIds };
}

/**
 * Any CSV + image folder: `image_column` names the file (relative to `images`), and either
 * `label_columns` (comma-separated 0/1 columns, multi-label) or `label_column` (one class name
 * per row, multi-class).
 */
export function importCsv(
  root: string,
  options: {
    csv?: string;
    images?: string;
    image_column?: string;
    label_columns?: string;
    label_column?: string;
    patient_column?: string;
  },
): DownstreamDataset {
  const file = path.join(root, options.csv ?? 'labels.csv');
  const imageColumn = options.image_column ?? 'image';
  const folder = path.join(root, options.images ?? '.');
  if (!options.label_columns === !options.label_column)
    throw new DatasetError(
      'csv dataset needs exactly one of the options label_columns (multi-label) or label_column (multi-class)',
    );
  const multi =
    options.label_columns
      ?.split(',')
      .map((c) => c.trim())
      .filter(Boolean) ?? [];
  const rows = readCsv(
    file,
    'label CSV',
    [imageColumn, ...(options.label_column ? [options.label_column] : multi)],
    root,
  );
  const images: LabelledImage[] = rows.map((row, i) => {
    const name = row[imageColumn];
    if (!name) throw new DatasetError(`${file} row ${i + 2}: column "${imageColumn}" is empty`);
    const image: LabelledImage = {
      id: name,
      path: path.join(folder, name),
      patient: options.patient_column ? row[options.patient_column] : undefined,
    };
    if (multi.length) {
      image.labels = multi.map((c) => {
        const v = number(row[c], file, i + 2, c);
        if (v !== 0 && v !== 1) throw new DatasetError(`${file} row ${i + 2}: column "${c}" must be 0 or 1`);
        return v;
      });
    }
    return image;
  });
  if (options.label_column) {
    const column = options.label_column;
    rows.forEach((row, i) => {
      if (!row[column]) throw new DatasetError(`${file} row ${i + 2}: column "${column}" is empty`);
    });
    const classNames = [...new Set(rows.map((r) => r[column]!))].sort();
    images.forEach((image, i) => (image.classIndex = classNames.indexOf(rows[i]![column]!)));
    return { name: 'csv', kind: 'multi-class', classNames, images };
  }
  return { name: 'csv', kind: 'multi-label', classNames: multi, images };
}

/**
 * `../shared/data/covid-cxr` (see its README): frontal X-rays with a finding label (COVID-19
 * vs other findings; the upstream "todo" rows are unlabelled and left out), V7 lung masks
 * (`lung_mask` column) and COCO lung boxes (`boxes.json`, right and left lung).
 */
export function importCovidCxr(root: string): DownstreamDataset {
  const file = path.join(root, 'metadata.csv');
  const rows = readCsv(file, 'covid-cxr metadata', ['patientid', 'finding', 'view', 'filename', 'lung_mask'], root);
  const boxesFile = path.join(root, 'boxes.json');
  const coco = parseJson(readText(boxesFile, 'covid-cxr lung boxes', root), boxesFile) as {
    images: { id: number; file_name: string }[];
    annotations: { image_id: number; bbox: [number, number, number, number]; category_id: number }[];
    categories: { id: number; name: string }[];
  };
  const categories = [...coco.categories].sort((a, b) => a.id - b.id);
  const fileById = new Map(coco.images.map((im) => [im.id, path.basename(im.file_name)]));
  const boxesByFile = new Map<string, Box[]>();
  for (const a of coco.annotations) {
    const name = fileById.get(a.image_id);
    if (!name) throw new DatasetError(`${boxesFile}: annotation for unknown image id ${a.image_id}`);
    const label = categories.findIndex((c) => c.id === a.category_id);
    if (label < 0) throw new DatasetError(`${boxesFile}: annotation with unknown category ${a.category_id}`);
    const list = boxesByFile.get(name) ?? [];
    list.push({ x: a.bbox[0], y: a.bbox[1], width: a.bbox[2], height: a.bbox[3], label });
    boxesByFile.set(name, list);
  }
  const images: LabelledImage[] = [];
  for (const row of rows) {
    if (row.view === 'L') continue;
    const finding = row.finding ?? '';
    const image: LabelledImage = {
      id: row.filename!,
      path: path.join(root, 'images', row.filename!),
      patient: row.patientid,
    };
    if (finding !== 'todo' && finding !== '')
      image.labels = [finding.split(',').some((f) => f.trim() === 'COVID-19') ? 1 : 0];
    if (row.lung_mask) image.mask = { kind: 'png', path: path.join(root, row.lung_mask) };
    const boxes = boxesByFile.get(row.filename!);
    if (boxes) image.boxes = boxes;
    images.push(image);
  }
  return {
    name: 'covid_cxr',
    kind: 'multi-label',
    classNames: ['COVID-19'],
    boxClassNames: categories.map((c) => c.name),
    images,
  };
}

export type DatasetFormat = 'chexpert' | 'rsna' | 'siim' | 'covidx' | 'csv' | 'covid_cxr';

/** The importer for a format name (the proto's Dataset.format), with its string options. */
export function importDataset(format: string, root: string, options: Record<string, string> = {}): DownstreamDataset {
  if (!fs.existsSync(root)) throw new DatasetError(`dataset root not found: ${root}`);
  if (!fs.statSync(root).isDirectory()) throw new DatasetError(`dataset root is not a folder: ${root}`);
  return { ...importFormat(format, root, options), root };
}

function importFormat(format: string, root: string, options: Record<string, string>): DownstreamDataset {
  switch (format) {
    case 'chexpert':
      return importChexpert(root, {
        csv: options.csv,
        classes: options.classes?.split(',').map((c) => c.trim()),
        uncertain: options.uncertain as UncertaintyPolicy | undefined,
        frontalOnly: options.frontal_only === 'true',
      });
    case 'rsna':
      return importRsna(root, options);
    case 'siim':
      return importSiim(root, options);
    case 'covidx':
      return importCovidx(root, { classes: options.classes?.split(',').map((c) => c.trim()) });
    case 'csv':
      return importCsv(root, options);
    case 'covid_cxr':
      return importCovidCxr(root);
    default:
      throw new DatasetError(
        `unknown dataset format "${format}" (known: chexpert, rsna, siim, covidx, csv, covid_cxr)`,
      );
  }
}

/** Decodes an image file (a regular file inside `root`, when given), naming the image on failure. */
export function loadImage(image: LabelledImage, root?: string): GrayImage {
  const bytes = readDatasetFile(image.path, `image ${image.id}`, root);
  try {
    return decodeImage(bytes);
  } catch (error) {
    throw new DatasetError(`image ${image.id} could not be decoded: ${(error as Error).message}`);
  }
}

/** The binary mask of an image at the image's size; a mask of another size is an error. */
export function loadMask(image: LabelledImage, width: number, height: number, root?: string): GrayImage {
  if (!image.mask) throw new DatasetError(`image ${image.id} has no mask`);
  if (image.mask.kind === 'rle') {
    const bits = decodeSiimRle(image.mask.runs, width, height);
    return grayImage(width, height, Float32Array.from(bits));
  }
  let mask: GrayImage;
  try {
    mask = decodeImage(readDatasetFile(image.mask.path, `mask of ${image.id}`, root));
  } catch (error) {
    if (error instanceof DatasetError) throw error;
    throw new DatasetError(`mask of ${image.id} could not be decoded: ${(error as Error).message}`);
  }
  if (mask.width !== width || mask.height !== height)
    throw new DatasetError(`mask of ${image.id} is ${mask.width}x${mask.height}, its image is ${width}x${height}`);
  for (let i = 0; i < mask.data.length; i++) mask.data[i] = mask.data[i]! >= 0.5 ? 1 : 0;
  return mask;
}
