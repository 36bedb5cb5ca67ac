import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { describeWithSharedData, itWithSharedData, makeTempDir, sharedDataDir } from '@medsyn/testing';
import {
  DatasetError,
  decodeSiimRle,
  importChexpert,
  importCovidCxr,
  importCovidx,
  importCsv,
  importDataset,
  importRsna,
  importSiim,
  isAllowedDatasetRoot,
  loadImage,
  loadMask,
} from '../src/downstream-datasets';
import { labelFraction, splitByPatient, stratum } from '../src/splits';

const COVID_CXR = path.join(sharedDataDir, 'covid-cxr');

function write(dir: string, name: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
  fs.writeFileSync(path.join(dir, name), text);
}

describe('dataset importers', () => {
  const tmp = makeTempDir('datasets');
  afterAll(() => tmp.remove());

  it('CheXpert: blank is negative, uncertain follows the policy, Path resolves under the root', () => {
    const root = path.join(tmp.dir, 'chexpert');
    write(
      root,
      'train.csv',
      'Path,Sex,Age,Frontal/Lateral,AP/PA,Cardiomegaly,Edema\nCheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,F,68,Frontal,AP,1,-1\nCheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg,M,50,Frontal,PA,,0\n',
    );
    const ones = importChexpert(root, { classes: ['Cardiomegaly', 'Edema'], uncertain: 'ones' });
    expect(ones.images.map((i) => i.labels)).toEqual([
      [1, 1],
      [0, 0],
    ]);
    expect(ones.images[0]!.patient).toBe('patient00001');
    expect(ones.images[0]!.path).toBe(path.join(root, 'train/patient00001/study1/view1_frontal.jpg'));
    expect(importChexpert(root, { classes: ['Cardiomegaly', 'Edema'], uncertain: 'zeros' }).images[0]!.labels).toEqual([
      1, 0,
    ]);
    expect(importChexpert(root, { classes: ['Cardiomegaly', 'Edema'], uncertain: 'ignore' }).images).toHaveLength(1);
    write(root, 'bad.csv', 'Path,Cardiomegaly\nx.jpg,2\n');
    expect(() => importChexpert(root, { csv: 'bad.csv', classes: ['Cardiomegaly'] })).toThrow(
      /row 2: column "Cardiomegaly" must be 1, 0, -1 or blank/,
    );
    expect(() => importChexpert(root, { classes: ['Pneumonia'] })).toThrow(/no column "Pneumonia"/);
  });

  it('RSNA: one image per patient, boxes from Target 1 rows', () => {
    const root = path.join(tmp.dir, 'rsna');
    write(
      root,
      'stage_2_train_labels.csv',
      'patientId,x,y,width,height,Target\na,,,,,0\nb,10,20,30,40,1\nb,100,120,50,60,1\n',
    );
    const ds = importRsna(root);
    expect(ds.images.map((i) => [i.id, i.labels, i.boxes?.length])).toEqual([
      ['a', [0], 0],
      ['b', [1], 2],
    ]);
    expect(ds.images[1]!.boxes![1]).toEqual({ x: 100, y: 120, width: 50, height: 60, label: 0 });
    write(root, 'bad.csv', 'patientId,x,y,width,height,Target\nb,ten,20,30,40,1\n');
    expect(() => importRsna(root, { csv: 'bad.csv' })).toThrow(/row 2: column "x" is not a number/);
  });

  it('SIIM: run-length masks decode column-major and union over rows; malformed runs are errors', () => {
    // 4x3 image (width 4, height 3); column-major indices: x * 3 + y.
    expect(Array.from(decodeSiimRle(['1 2'], 4, 3))).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
    expect(Array.from(decodeSiimRle(['0 1', '4 1 2 1'], 4, 3))).toEqual([1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    expect(() => decodeSiimRle(['10 5'], 4, 3)).toThrow(/runs past/);
    const root = path.join(tmp.dir, 'siim');
    write(root, 'train-rle.csv', 'ImageId, EncodedPixels\n1.2.3, -1\n1.2.4, 1 2\n1.2.4, 5 1\n');
    write(root, 'dicom-images-train/s/t/1.2.4.dcm', '');
    const ds = importSiim(root);
    expect(ds.images.map((i) => [i.id, i.labels])).toEqual([
      ['1.2.3', [0]],
      ['1.2.4', [1]],
    ]);
    expect(ds.images[1]!.path).toBe(path.join(root, 'dicom-images-train/s/t/1.2.4.dcm'));
    expect(Array.from(loadMask(ds.images[1]!, 4, 3).data).reduce((a, b) => a + b)).toBe(3);
    write(root, 'bad.csv', 'ImageId,EncodedPixels\n1.2.4,1 2 3\n');
    expect(() => importSiim(root, { csv: 'bad.csv' })).toThrow(/row 2: column "EncodedPixels" has an odd number/);
  });

  it('COVIDx: class lists, the test list kept as the test split, short lines are errors', () => {
    const root = path.join(tmp.dir, 'covidx');
    write(root, 'train.txt', '1 a.png COVID-19 cohen\n2 b.png normal rsna\n3 c.png pneumonia rsna\n');
    write(root, 'test.txt', '4 d.png normal rsna\n');
    const ds = importCovidx(root);
    expect(ds.classNames).toEqual(['COVID-19', 'normal', 'pneumonia']);
    expect(ds.images.map((i) => i.classIndex)).toEqual([0, 1, 2, 1]);
    expect([...ds.testIds!]).toEqual(['test/d.png']);
    expect(splitByPatient(ds, ds.images, { seed: 0 }).test.map((i) => i.id)).toEqual(['test/d.png']);
    write(root, 'test.txt', '4 d.png\n');
    expect(() => importCovidx(root)).toThrow(/test.txt line 1: expected "patient filename class/);
  });

  it('generic CSV: multi-label columns or one class column, an empty label column is an error', () => {
    const root = path.join(tmp.dir, 'csv');
    write(root, 'labels.csv', 'image,a,b,finding\nx.png,1,0,cat\ny.png,0,1,dog\n');
    expect(importCsv(root, { label_columns: 'a,b' }).images.map((i) => i.labels)).toEqual([
      [1, 0],
      [0, 1],
    ]);
    const multiClass = importCsv(root, { label_column: 'finding' });
    expect([multiClass.kind, multiClass.classNames, multiClass.images.map((i) => i.classIndex)]).toEqual([
      'multi-class',
      ['cat', 'dog'],
      [0, 1],
    ]);
    write(root, 'empty.csv', 'image,finding\nx.png,\n');
    expect(() => importCsv(root, { csv: 'empty.csv', label_column: 'finding' })).toThrow(
      /row 2: column "finding" is empty/,
    );
    expect(() => importCsv(root, { csv: 'missing.csv', label_column: 'finding' })).toThrow(/label CSV not found/);
    expect(() => importDataset('dicomdir', root)).toThrow(/unknown dataset format "dicomdir"/);
  });

  it('masks of the wrong size are an error naming the image', () => {
    const root = path.join(tmp.dir, 'masks');
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(root, 'm.png'), encodeGrayPng(grayImage(8, 8)));
    expect(() =>
      loadMask({ id: 'img-7', path: '', mask: { kind: 'png', path: path.join(root, 'm.png') } }, 16, 16),
    ).toThrow(new DatasetError('mask of img-7 is 8x8, its image is 16x16'));
  });

  itWithSharedData('covid-cxr: finding labels, lung masks and lung boxes from ../shared/data', () => {
    const ds = importCovidCxr(COVID_CXR);
    const labelled = ds.images.filter((i) => i.labels);
    const masks = ds.images.filter((i) => i.mask);
    const boxed = ds.images.filter((i) => i.boxes);
    // 648 images - 54 lateral; "todo" images carry no label.
    expect(ds.images).toHaveLength(594);
    expect(labelled.length).toBeGreaterThan(450);
    expect(masks).toHaveLength(427);
    expect(boxed.length).toBeGreaterThan(140);
    expect(ds.boxClassNames).toEqual(['Right Lung', 'Left Lung']);
    const first = masks[0]!;
    const image = loadImage(first);
    const mask = loadMask(first, image.width, image.height);
    const share = mask.data.reduce((a, b) => a + b, 0) / mask.data.length;
    expect(share).toBeGreaterThan(0.09);
    expect(share).toBeLessThan(0.62);
  });
});

describeWithSharedData('splits and label fractions', () => {
  const ds = importCovidCxr(COVID_CXR);
  const labelled = ds.images.filter((i) => i.labels);

  it('patients never straddle splits, and the split is seeded', () => {
    const split = splitByPatient(ds, labelled, { seed: 3 });
    const patients = (list: typeof labelled) => new Set(list.map((i) => i.patient));
    const train = patients(split.train);
    for (const p of patients(split.test)) expect(train.has(p)).toBe(false);
    for (const p of patients(split.validation)) expect(train.has(p)).toBe(false);
    expect(split.train.length + split.validation.length + split.test.length).toBe(labelled.length);
    expect(splitByPatient(ds, labelled, { seed: 3 })).toEqual(split);
    expect(splitByPatient(ds, labelled, { seed: 4 }).test).not.toEqual(split.test);
  });

  it('label fractions are stratified, seeded, and keep every class', () => {
    const train = splitByPatient(ds, labelled, { seed: 0 }).train;
    const one = labelFraction(train, 0.01, 1);
    expect(new Set(one.map(stratum))).toEqual(new Set(train.map(stratum)));
    expect(labelFraction(train, 0.01, 1)).toEqual(one);
    const ten = labelFraction(train, 0.1, 1);
    const positives = (l: typeof train) => l.filter((i) => i.labels![0] === 1).length / l.length;
    expect(Math.abs(positives(ten) - positives(train))).toBeLessThan(0.05);
    expect(labelFraction(train, 1, 1)).toHaveLength(train.length);
    expect(() => labelFraction(train, 0, 1)).toThrow(/label fraction/);
  });
});

describe('reading dataset files safely', () => {
  const tmp = makeTempDir('datasets-safe');
  afterAll(() => tmp.remove());
  const secret = 'root:x:0:secret-first-line';

  /** A CSV dataset of two 8x8 images, and a file outside it that must never be read or quoted. */
  function dataset(name: string): string {
    const root = path.join(tmp.dir, name);
    fs.mkdirSync(path.join(root, 'images'), { recursive: true });
    for (const i of [0, 1]) fs.writeFileSync(path.join(root, 'images', `${i}.png`), encodeGrayPng(grayImage(8, 8)));
    write(root, 'labels.csv', 'image,positive\nimages/0.png,0\nimages/1.png,1\n');
    write(tmp.dir, 'outside/group', `${secret}\nline 2\n`);
    return root;
  }

  const refuses = (fn: () => unknown, pattern: RegExp) => {
    let error: unknown;
    try {
      fn();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DatasetError);
    expect((error as Error).message).toMatch(pattern);
    expect((error as Error).message).not.toContain('secret');
  };

  it('refuses a FIFO without blocking, and a link to a file outside the dataset folder', () => {
    const root = dataset('fifo');
    fs.rmSync(path.join(root, 'labels.csv'));
    execFileSync('mkfifo', [path.join(root, 'labels.csv')]);
    const started = Date.now();
    refuses(
      () => importDataset('csv', root, { label_columns: 'positive' }),
      /label CSV .*labels\.csv is not a regular file/,
    );
    expect(Date.now() - started).toBeLessThan(1000);
    const linked = dataset('linked');
    fs.rmSync(path.join(linked, 'labels.csv'));
    fs.symlinkSync(path.join(tmp.dir, 'outside', 'group'), path.join(linked, 'labels.csv'));
    refuses(
      () => importDataset('csv', linked, { label_columns: 'positive' }),
      /labels\.csv is a link to outside the dataset folder/,
    );
    refuses(
      () => importDataset('csv', linked, { label_columns: 'positive', csv: '../outside/group' }),
      /is outside the dataset folder/,
    );
    refuses(
      () => importDataset('csv', path.join(linked, 'labels.csv'), { label_columns: 'positive' }),
      /dataset root is not a folder/,
    );
  });

  it('refuses an image path that climbs out of the dataset folder, and a device', () => {
    const root = dataset('climb');
    write(root, 'labels.csv', 'image,positive\n../outside/group,0\nimages/1.png,1\n');
    const ds = importDataset('csv', root, { label_columns: 'positive' });
    refuses(() => loadImage(ds.images[0]!, ds.root), /image \.\.\/outside\/group .* is outside the dataset folder/);
    expect(loadImage(ds.images[1]!, ds.root)).toMatchObject({ width: 8, height: 8 });
    refuses(() => loadImage({ id: 'null', path: '/dev/null' }), /image null \/dev\/null is not a regular file/);
  });

  it('never quotes the file: a missing column counts the header, bad JSON names only the file', () => {
    const root = dataset('quote');
    fs.copyFileSync(path.join(tmp.dir, 'outside', 'group'), path.join(root, 'labels.csv'));
    refuses(
      () => importDataset('csv', root, { label_columns: 'positive' }),
      /labels\.csv has no column "image" \(line 1 has 1 columns\)$/,
    );
    write(root, 'metadata.csv', 'patientid,finding,view,filename,lung_mask\np1,COVID-19,PA,a.png,\n');
    write(root, 'boxes.json', `{"images": [${secret}]}`);
    refuses(() => importDataset('covid_cxr', root), /boxes\.json is not valid JSON$/);
  });

  it('allows dataset folders under a root, also through links that stay inside, and nothing else', () => {
    const root = dataset('allowed');
    fs.symlinkSync(root, path.join(tmp.dir, 'link-inside'));
    fs.symlinkSync('/etc', path.join(tmp.dir, 'link-etc'));
    expect(isAllowedDatasetRoot(root, [tmp.dir])).toBe(true);
    expect(isAllowedDatasetRoot(path.join(tmp.dir, 'link-inside'), [tmp.dir])).toBe(true);
    expect(isAllowedDatasetRoot(path.join(tmp.dir, 'not-yet'), [tmp.dir])).toBe(true);
    expect(isAllowedDatasetRoot(path.join(tmp.dir, 'link-etc'), [tmp.dir])).toBe(false);
    expect(isAllowedDatasetRoot('/etc', [tmp.dir])).toBe(false);
    expect(isAllowedDatasetRoot(`${tmp.dir}-sibling`, [tmp.dir])).toBe(false);
    expect(isAllowedDatasetRoot(path.join(tmp.dir, '..'), [tmp.dir])).toBe(false);
  });
});
