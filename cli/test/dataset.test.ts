import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileArtifactStore, getBuffer, putJsonl } from '@medsyn/artifact-store';
import type { PairLine } from '@medsyn/dataset';
import { encodeGrayPng } from '@medsyn/imaging';
import { makeTempDir } from '@medsyn/testing';
import { loadPairManifests } from '@medsyn/vlp';
import { main } from '../src/main';

/** Runs the CLI in-process, returning its exit code and what it printed. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const code = await main(['node', 'medsyn', ...args]);
    return {
      code,
      stdout: stdout.mock.calls.map((c) => String(c[0])).join(''),
      stderr: stderr.mock.calls.map((c) => String(c[0])).join(''),
    };
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

describe('medsyn dataset', () => {
  const tmp = makeTempDir('cli-dataset');
  afterAll(() => tmp.remove());

  it('exports synthesizer pairs to a folder with a card, and imports it as a pair manifest for pre-training', async () => {
    const storeDir = path.join(tmp.dir, 'store');
    const store = new FileArtifactStore(storeDir);
    const images: Buffer[] = [];
    const lines: PairLine[] = [];
    for (const [i, id] of ['a1', 'a2', 'a3'].entries()) {
      const png = Buffer.from(encodeGrayPng({ width: 4, height: 4, data: new Float32Array(16).fill(i / 3) }));
      const ref = await store.put(`images/${id}.png`, png);
      images.push(png);
      lines.push({
        id,
        image: ref.uri,
        report: `Prompt ${id}.`,
        image_sha256: ref.sha256,
        seed: String(i),
        accepted: true,
        attempts: 1,
        rejections: {},
        prompt_truncated: false,
      });
    }
    await putJsonl(store, 'pairs-shard-00000-of-00001.jsonl', lines);
    await putJsonl(store, 'anonymized.jsonl', [{ id: 'a1', text: 'FINDINGS: clear. IMPRESSION: Prompt a1.' }]);
    const storeUri = pathToFileURL(storeDir).href;
    const bundle = path.join(tmp.dir, 'bundle');

    const exported = await run([
      'dataset',
      'export',
      '--store',
      storeUri,
      '--pairs',
      'pairs-shard-00000-of-00001.jsonl',
      '--reports',
      'anonymized.jsonl',
      '--out',
      bundle,
      '--shard-size',
      '2',
      '--generator',
      'tiny-unet',
      '--deid-mode',
      'mask',
      '--deid-recall',
      '0.99',
      '--deid-recall-source',
      'a test set',
      '--licence',
      'CC0-1.0',
      '--no-progress',
    ]);
    expect(exported).toMatchObject({ code: 0, stderr: '' });
    expect(exported.stdout).toMatch(/^3 samples in 2 shards\ncard: file:\/\/.*\/bundle\/dataset\.json\n$/);
    expect(
      fs
        .readdirSync(bundle)
        .filter((f) => !f.startsWith('.'))
        .sort(),
    ).toEqual(['README.md', 'dataset.json', 'shard-000000.tar', 'shard-000001.tar']);

    const target = path.join(tmp.dir, 'target');
    const imported = await run([
      'dataset',
      'import',
      '--bundle',
      bundle,
      '--store',
      pathToFileURL(target).href,
      '--prefix',
      'synthetic',
      '--no-progress',
    ]);
    expect(imported).toMatchObject({ code: 0, stderr: '' });
    expect(imported.stdout).toMatch(
      /^3 samples imported into file:\/\/.*\/target\/synthetic\/\ndata\.synthetic_pairs: synthetic\/pairs\.jsonl\n$/,
    );
    const targetStore = new FileArtifactStore(target);
    const loaded = await loadPairManifests(targetStore, { real: [], synthetic: ['synthetic/pairs.jsonl'] });
    expect(loaded.records.map((r) => r.report)).toEqual([
      'FINDINGS: clear. IMPRESSION: Prompt a1.',
      'Prompt a2.',
      'Prompt a3.',
    ]);
    for (const [i, record] of loaded.records.entries())
      expect(await getBuffer(targetStore, record.imageKey)).toEqual(images[i]);
  });

  it('refuses a recall given as a percentage, and a folder that is not a bundle, naming the flag or file', async () => {
    const percent = await run([
      'dataset',
      'export',
      '--pairs',
      'p.jsonl',
      '--out',
      path.join(tmp.dir, 'x'),
      '--generator',
      'g',
      '--deid-recall',
      '98.7',
      '--deid-recall-source',
      's',
    ]);
    expect(percent.code).toBe(1);
    expect(percent.stderr).toMatch(/--deid-recall must be a fraction in \[0, 1\]/);
    const notBundle = await run([
      'dataset',
      'import',
      '--bundle',
      tmp.dir,
      '--store',
      pathToFileURL(path.join(tmp.dir, 'y')).href,
    ]);
    expect(notBundle.code).toBe(1);
    expect(notBundle.stderr).toMatch(/dataset\.json: not found in .*: not a dataset bundle/);
  });
});
