// Builds examples/demo/sample/ from ../shared/data/covid-cxr: the frontal radiographs whose licence
// allows redistribution with attribution only (PERMISSIVE_LICENCES), shrunk to keep the repository
// small, with their lung masks, lung boxes derived from those masks, the metadata the evaluator
// reads, the reports the pipeline starts from, and the attribution of every image.
//
//   node --conditions=medsyn-source --import tsx examples/demo/build-sample.ts [../shared/data/covid-cxr]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { PERMISSIVE_LICENCES, covidCxrReportText } from '@medsyn/generator-training';
import { decodeImage, encodeGrayPng, resize, type GrayImage } from '@medsyn/imaging';

const LONG_SIDE = 160;
const source = path.resolve(process.argv[2] ?? path.join(__dirname, '../../../shared/data/covid-cxr'));
const out = path.join(__dirname, 'sample');
const COLUMNS = ['patientid', 'finding', 'view', 'filename', 'lung_mask', 'license', 'doi', 'url', 'clinical_notes'];

function shrink(image: GrayImage): GrayImage {
  const scale = LONG_SIDE / Math.max(image.width, image.height);
  return scale >= 1 ? image : resize(image, Math.round(image.width * scale), Math.round(image.height * scale));
}

/**
 * The bounding boxes of the two largest 4-connected mask regions, left-most first: on a frontal
 * radiograph the patient's right lung is on the image's left.
 */
function lungBoxes(mask: GrayImage): [number, number, number, number][] {
  const { width, height, data } = mask;
  const seen = new Uint8Array(width * height);
  const regions: { size: number; box: [number, number, number, number] }[] = [];
  for (let start = 0; start < data.length; start++) {
    if (seen[start] || data[start]! < 0.5) continue;
    let [x0, y0, x1, y1, size] = [width, height, 0, 0, 0];
    const stack = [start];
    seen[start] = 1;
    while (stack.length) {
      const p = stack.pop()!;
      const x = p % width;
      const y = (p - x) / width;
      size++;
      [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
      for (const q of [
        x > 0 ? p - 1 : -1,
        x < width - 1 ? p + 1 : -1,
        y > 0 ? p - width : -1,
        y < height - 1 ? p + width : -1,
      ]) {
        if (q >= 0 && !seen[q] && data[q]! >= 0.5) {
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    regions.push({ size, box: [x0, y0, x1 - x0 + 1, y1 - y0 + 1] });
  }
  return regions
    .sort((a, b) => b.size - a.size)
    .slice(0, 2)
    .map((r) => r.box)
    .sort((a, b) => a[0] - b[0]);
}

const rows = parse(fs.readFileSync(path.join(source, 'metadata.csv')), {
  columns: true,
  skip_empty_lines: true,
}) as Record<string, string>[];
const kept = rows.filter((r) => PERMISSIVE_LICENCES.includes((r.license ?? '').trim()) && r.view !== 'L' && r.view);
fs.rmSync(out, { recursive: true, force: true });
for (const folder of ['images', 'masks']) fs.mkdirSync(path.join(out, folder), { recursive: true });

const coco = {
  info: {
    description:
      'Lung boxes derived from the V7 lung masks: the bounding box of each of the two largest mask regions (image-left = patient right lung).',
  },
  categories: [
    { id: 1, name: 'Right Lung' },
    { id: 2, name: 'Left Lung' },
  ],
  images: [] as { id: number; file_name: string; width: number; height: number }[],
  annotations: [] as { id: number; image_id: number; category_id: number; bbox: number[] }[],
};
const reports: string[] = [];
const attributions: string[] = [];
for (const row of kept) {
  const image = shrink(decodeImage(fs.readFileSync(path.join(source, row.folder || 'images', row.filename!))));
  fs.writeFileSync(path.join(out, 'images', row.filename!), encodeGrayPng(image));
  if (row.lung_mask) {
    const mask = resize(decodeImage(fs.readFileSync(path.join(source, row.lung_mask))), image.width, image.height);
    for (let i = 0; i < mask.data.length; i++) mask.data[i] = mask.data[i]! >= 0.5 ? 1 : 0;
    fs.writeFileSync(path.join(out, row.lung_mask), encodeGrayPng(mask));
    const boxes = lungBoxes(mask);
    if (boxes.length === 2) {
      const imageId = coco.images.length + 1;
      coco.images.push({ id: imageId, file_name: `images/${row.filename}`, width: image.width, height: image.height });
      boxes.forEach((bbox, i) =>
        coco.annotations.push({ id: coco.annotations.length + 1, image_id: imageId, category_id: i + 1, bbox }),
      );
    }
  }
  reports.push(
    JSON.stringify({
      id: row.filename,
      patient: row.patientid,
      text: covidCxrReportText(row),
      image: `images/${row.filename}`,
    }),
  );
  attributions.push(`| ${row.filename} | ${row.license} | ${row.doi ? `doi:${row.doi}` : ''} ${row.url ?? ''} |`);
}
fs.writeFileSync(path.join(out, 'metadata.csv'), stringify(kept, { header: true, columns: COLUMNS }));
fs.writeFileSync(path.join(out, 'boxes.json'), JSON.stringify(coco));
fs.writeFileSync(path.join(out, 'reports.jsonl'), reports.join('\n') + '\n');
fs.writeFileSync(
  path.join(out, 'ATTRIBUTION.md'),
  `# Demo sample: attribution and licences

${kept.length} frontal chest radiographs of the **COVID-19 image data collection** (Joseph Paul Cohen,
Paul Morrison, Lan Dao: arXiv:2003.11597, https://github.com/ieee8023/covid-chestxray-dataset, via the
June 2020 snapshot described in \`../shared/data/README.md\`), chosen because each image's own licence
(column \`license\`) allows redistribution with attribution only: ${[...new Set(kept.map((r) => r.license))].join(', ')}.

- **Images** (\`images/\`): shrunk to ${LONG_SIDE} px on the long side, 8-bit gray PNG; each keeps the
  licence and source listed below.
- **Lung masks** (\`masks/\`): V7 Labs' hand-drawn lung masks shipped in torchxrayvision (Apache-2.0
  code; no separate licence is stated for the masks, so they follow the images they annotate),
  resized with the image and thresholded at 0.5.
- **Lung boxes** (\`boxes.json\`): *derived here* from those masks (the bounding box of each of the
  two largest mask regions), not the collection's own box annotations, which cover only 2 of these images.
- **metadata.csv and reports.jsonl**: columns of the collection's \`metadata.csv\` (released upstream
  under CC BY-NC-SA 4.0, so these two files keep that licence: attribution, non-commercial,
  share-alike). A report is \`<view> chest radiograph, <finding>. <clinical notes>\`
  (\`covidCxrReportText\` in \`libs/generator-training\`); the collection has no radiology reports.

Built by \`node --conditions=medsyn-source --import tsx examples/demo/build-sample.ts\`.
Demonstration data only, not for clinical use.

| image | licence | source |
|---|---|---|
${attributions.join('\n')}
`,
);
console.log(
  `${kept.length} images, ${coco.images.length} with lung boxes, ${kept.filter((r) => r.lung_mask).length} with masks -> ${out}`,
);
