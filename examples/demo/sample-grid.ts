// Writes a PNG grid of a pipeline run's images: real (top row) and synthetic (bottom row) for the
// same anonymized reports, e.g. the README's sample grid after `npm run demo`:
//
//   node --conditions=medsyn-source --import tsx examples/demo/sample-grid.ts [STORE_DIR] [RUN] [OUT.png] [COUNT]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileArtifactStore, getBuffer, readJsonl } from '@medsyn/artifact-store';
import { centerCropSquare, decodeImage, encodeGrayPng, grayImage } from '@medsyn/imaging';

const [
  storeDir = path.join(__dirname, '../../.medsyn'),
  run = 'demo',
  out = path.join(__dirname, '../../docs/images/demo-grid.png'),
  countArg = '8',
] = process.argv.slice(2);
const TILE = 128;
const GAP = 4;

async function main(): Promise<void> {
  const store = new FileArtifactStore(path.resolve(storeDir));
  const pairs = async (source: string) => {
    const images = new Map<string, string>();
    for await (const line of readJsonl<{ id: string; image: string }>(store, `pipeline/${run}/${source}/pairs.jsonl`))
      if (line.ok) images.set(line.value.id, line.value.image);
    return images;
  };
  const [real, synthetic] = [await pairs('real'), await pairs('synthetic')];
  const ids = [...synthetic.keys()].filter((id) => real.has(id)).slice(0, Number(countArg));
  const grid = grayImage(ids.length * (TILE + GAP) - GAP, 2 * TILE + GAP);
  grid.data.fill(1);
  for (const [column, id] of ids.entries()) {
    for (const [row, source] of [real, synthetic].entries()) {
      const tile = centerCropSquare(decodeImage(await getBuffer(store, store.keyOf(source.get(id)!))), TILE);
      for (let y = 0; y < TILE; y++)
        grid.data.set(
          tile.data.subarray(y * TILE, (y + 1) * TILE),
          (row * (TILE + GAP) + y) * grid.width + column * (TILE + GAP),
        );
    }
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, encodeGrayPng(grid));
  console.log(`${out}: real (top) and synthetic (bottom) for ${ids.join(', ')}`);
}

main().catch((error: Error) => {
  console.error(error.message);
  process.exit(1);
});
