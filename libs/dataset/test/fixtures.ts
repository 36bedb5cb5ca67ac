import { putJsonl, type ArtifactStore } from '@medsyn/artifact-store';
import { encodeGrayPng } from '@medsyn/imaging';
import type { PairLine } from '../src';

/** A small gradient image that differs per index, so a swapped image is caught. */
export function tinyPng(index: number, modelSha256?: string): Buffer {
  const data = new Float32Array(64);
  for (let i = 0; i < data.length; i++) data[i] = ((i + index * 7) % 13) / 12;
  // The synthesizer stamps its model's digest into each PNG; the fixtures can too.
  return Buffer.from(
    encodeGrayPng({ width: 8, height: 8, data }, modelSha256 ? { text: { 'medsyn:model_sha256': modelSha256 } } : {}),
  );
}

export const FULL_REPORT = (id: string) =>
  `FINDINGS: Report ${id}, heart size normal, no pleural effusion. IMPRESSION: No acute disease (${id}).`;
export const PROMPT = (id: string) => `No acute disease (${id}).`;

/**
 * What the synthesizer and the anonymizer leave in a store: `images/<id>.png`, a pair manifest
 * with its fields (id, image, report, image_sha256, seed, ...), the anonymizer's
 * `anonymized.jsonl` for all reports but the last, and a generic `{"image", "report"}` manifest.
 */
export async function writeSynthesizerOutput(
  store: ArtifactStore,
  ids: string[],
  modelSha256?: (i: number) => string,
): Promise<{ pairs: string; generic: string; reports: string; images: Map<string, Buffer> }> {
  const images = new Map<string, Buffer>();
  const lines: PairLine[] = [];
  for (const [i, id] of ids.entries()) {
    const png = tinyPng(i, modelSha256?.(i));
    const ref = await store.put(`synth/images/${id}.png`, png);
    images.set(id, png);
    lines.push({
      id,
      image: ref.uri,
      report: PROMPT(id),
      image_sha256: ref.sha256,
      seed: String(1000 + i),
      accepted: true,
      attempts: 1,
      rejections: {},
      prompt_truncated: false,
    });
  }
  await putJsonl(store, 'synth/pairs-shard-00000-of-00001.jsonl', lines);
  await putJsonl(
    store,
    'anon/anonymized.jsonl',
    ids.slice(0, -1).map((id) => ({ id, text: FULL_REPORT(id), sections: {}, prompt: { text: PROMPT(id) } })),
  );
  const extra = tinyPng(99);
  await store.put('other/imgs/extra.png', extra);
  images.set('extra', extra);
  await putJsonl(store, 'other/pairs.jsonl', [
    { image: 'imgs/extra.png', report: 'Generic pair report.' },
    { image: 'imgs/none.png' },
    { image: 'imgs/gone.png', report: 'Its image was deleted.' },
  ]);
  return {
    pairs: 'synth/pairs-shard-00000-of-00001.jsonl',
    generic: 'other/pairs.jsonl',
    reports: 'anon/anonymized.jsonl',
    images,
  };
}

export const CARD = {
  name: 'tiny-cxr',
  generator: { name: 'tiny-unet', uri: 'file:///models/tiny', sha256: 'a'.repeat(64) },
  promptsSource: 'test reports, impressions',
  deid: { mode: 'mask', recall: 0.9984, recallSource: 'held-out synthetic radiology gold (docs/anonymizer.md)' },
  licence: 'CC0-1.0',
};
