import { putJsonl, type ArtifactStore } from '@medsyn/artifact-store';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { seededRandom } from '@medsyn/random';

const COUNTS = ['A single', 'Two'];
const SIZES = ['small', 'large'];
const DENSITIES = ['faint', 'dense'];

/**
 * A learnable paired set: noisy 32 px "radiographs" with one or two round opacities whose
 * number, size and density the report states, e.g. "Two large dense opacities. No effusion."
 * (8 findings, all visible to a convolutional encoder whatever their position). Written under
 * `folder` as PNGs plus pairs.jsonl; returns the manifest key.
 */
export async function writeOpacityPairs(
  store: ArtifactStore,
  folder: string,
  count: number,
  seed = 0,
): Promise<string> {
  const random = seededRandom(seed);
  const lines: { image: string; report: string }[] = [];
  for (let i = 0; i < count; i++) {
    const finding = i % 8;
    const two = finding & 1;
    const large = (finding >> 1) & 1;
    const dense = (finding >> 2) & 1;
    const size = 32;
    const image = grayImage(size, size);
    for (let k = 0; k < size * size; k++) image.data[k] = 0.2 + 0.1 * random();
    const radius = large ? 6 : 3;
    for (let n = 0; n <= two; n++) {
      // Two opacities sit in different halves so they do not merge.
      const cx = two ? (n ? 22 : 9) + (random() - 0.5) * 4 : 8 + random() * 16;
      const cy = 8 + random() * 16;
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          if ((x - cx) ** 2 + (y - cy) ** 2 <= radius * radius)
            image.data[y * size + x] = Math.min(1, image.data[y * size + x] + (dense ? 0.65 : 0.3));
        }
      }
    }
    const name = `images/${String(i).padStart(4, '0')}.png`;
    await store.put(`${folder}/${name}`, encodeGrayPng(image));
    lines.push({
      image: name,
      report: `${COUNTS[two]} ${SIZES[large]} ${DENSITIES[dense]} ${two ? 'opacities' : 'opacity'}. No effusion.`,
    });
  }
  const key = `${folder}/pairs.jsonl`;
  await putJsonl(store, key, lines);
  return key;
}
