import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tar from 'tar-stream';
import {
  FileArtifactStore,
  getBuffer,
  openStore,
  putJsonl,
  sha256Hex,
  type ArtifactBatch,
  type ArtifactStore,
} from '@medsyn/artifact-store';
import { makeTempDir, startS3Server, type S3Server } from '@medsyn/testing';
import { DATASET_FORMAT, exportDataset, importDataset, readPairManifests, type DatasetCard } from '../src';
import { CARD, FULL_REPORT, PROMPT, writeSynthesizerOutput } from './fixtures';

/** The pairs of one manifest, read as the pretrainer reads them. */
const readSynthetic = (store: ArtifactStore, manifest: string) =>
  readPairManifests(store, [{ source: 'synthetic', manifests: [manifest], field: () => 'pairs' }]);

// Report ids with dots: WebDataset would split such a key, so the export must not keep them.
const IDS = ['r.001', 'r.002', 'r.003', 'r.004'];

describe('dataset export and import', () => {
  const tmp = makeTempDir('dataset');
  afterAll(() => tmp.remove());
  let source: FileArtifactStore;
  let fixture: Awaited<ReturnType<typeof writeSynthesizerOutput>>;
  const bundleDir = path.join(tmp.dir, 'bundle');

  beforeAll(async () => {
    source = new FileArtifactStore(path.join(tmp.dir, 'source'));
    fixture = await writeSynthesizerOutput(source, IDS);
  });

  it('exports WebDataset shards with a card, and imports them as pairs the pretrainer reads with the same bytes and texts', async () => {
    const result = await exportDataset({
      store: source,
      pairs: [fixture.pairs, fixture.generic],
      reports: fixture.reports,
      out: new FileArtifactStore(bundleDir),
      shardSize: 2,
      card: CARD,
    });
    expect(result.samples).toBe(5);
    expect(result.shards.map((s) => [s.key, s.samples])).toEqual([
      ['shard-000000.tar', 2],
      ['shard-000001.tar', 2],
      ['shard-000002.tar', 1],
    ]);
    const card = JSON.parse(fs.readFileSync(path.join(bundleDir, 'dataset.json'), 'utf8')) as DatasetCard;
    expect(card).toMatchObject({
      format: DATASET_FORMAT,
      samples: 5,
      licence: 'CC0-1.0',
      text: { anonymized_report: 3, prompt: 2 },
      skipped: { 'no report text': 1, 'image not found': 1 },
    });
    expect(card.deidentification).toEqual({ mode: 'mask', recall: 0.9984, recall_source: CARD.deid.recallSource });
    for (const shard of card.shards) expect(shard.sha256).toBe(result.shards.find((s) => s.key === shard.key)!.sha256);
    const readme = fs.readFileSync(path.join(bundleDir, 'README.md'), 'utf8');
    expect(readme).toContain('a'.repeat(64));
    expect(readme).toContain('| de-identification recall | 99.84 %, measured on held-out synthetic radiology gold');
    expect(readme).toContain('Automatic de-identification misses some PHI');
    expect(readme).toContain('wds.WebDataset("shard-{000000..000002}.tar"');
    expect(readme).toContain(`| \`shard-000001.tar\` | 2 |`);

    const target = new FileArtifactStore(path.join(tmp.dir, 'target'));
    const imported = await importDataset({ bundle: new FileArtifactStore(bundleDir), store: target });
    expect(imported.samples).toBe(5);
    expect(imported.manifestKey).toMatch(/^datasets\/tiny-cxr-[0-9a-f]{12}\/pairs\.jsonl$/);
    const loaded = await readSynthetic(target, imported.manifestKey);
    expect(loaded.skipped).toEqual([]);
    const byKey = new Map(loaded.records.map((r) => [path.posix.basename(r.imageKey, '.png'), r]));
    expect([...byKey.keys()]).toEqual(['r_001', 'r_002', 'r_003', 'r_004', 'extra']);
    for (const [i, id] of IDS.entries()) {
      const record = byKey.get(id.replace('.', '_'))!;
      expect(await getBuffer(target, record.imageKey)).toEqual(fixture.images.get(id));
      // The last report is missing from anonymized.jsonl: its text is the prompt.
      expect(record.report).toBe(i < IDS.length - 1 ? FULL_REPORT(id) : PROMPT(id));
    }
    expect(await getBuffer(target, byKey.get('extra')!.imageKey)).toEqual(fixture.images.get('extra'));
    expect(byKey.get('extra')!.report).toBe('Generic pair report.');

    // Importing again gives the same manifest, byte for byte, at the same key.
    const before = await getBuffer(target, imported.manifestKey);
    const again = await importDataset({ bundle: new FileArtifactStore(bundleDir), store: target });
    expect(again.manifestKey).toBe(imported.manifestKey);
    expect(await getBuffer(target, again.manifestKey)).toEqual(before);
    // And exporting again gives byte-identical shards.
    const reexport = await exportDataset({
      store: source,
      pairs: [fixture.pairs, fixture.generic],
      reports: fixture.reports,
      out: new FileArtifactStore(path.join(tmp.dir, 'bundle2')),
      shardSize: 2,
      card: CARD,
    });
    expect(reexport.shards.map((s) => s.sha256)).toEqual(result.shards.map((s) => s.sha256));
  });

  it('writes shards that Python tarfile groups into <key>.png/.txt/.json samples, as WebDataset does', () => {
    const shards = ['shard-000000.tar', 'shard-000001.tar', 'shard-000002.tar'].map((s) => path.join(bundleDir, s));
    const samples = JSON.parse(
      execFileSync('/usr/bin/python3', [path.join(__dirname, 'python', 'read_webdataset.py'), ...shards], {
        encoding: 'utf8',
      }),
    ) as {
      shard: string;
      key: string;
      exts: string[];
      image_size: number[];
      image_sha256: string;
      text: string;
      json: Record<string, unknown>;
    }[];
    expect(samples.map((s) => [s.shard, s.key])).toEqual([
      ['shard-000000.tar', 'r_001'],
      ['shard-000000.tar', 'r_002'],
      ['shard-000001.tar', 'r_003'],
      ['shard-000001.tar', 'r_004'],
      ['shard-000002.tar', 'extra'],
    ]);
    for (const sample of samples) {
      expect(sample.exts).toEqual(['json', 'png', 'txt']);
      expect(sample.image_size).toEqual([8, 8]);
      expect(sample.json.image_sha256).toBe(sample.image_sha256);
    }
    expect(samples[0]!.text).toBe(FULL_REPORT('r.001'));
    expect(samples[0]!.json).toMatchObject({
      key: 'r_001',
      id: 'r.001',
      prompt: PROMPT('r.001'),
      seed: '1000',
      text_source: 'anonymized_report',
      generator: { name: 'tiny-unet', sha256: 'a'.repeat(64) },
    });
    expect(samples[3]!.json).toMatchObject({ id: 'r.004', text_source: 'prompt' });
  });

  /** A copy of the bundle to damage. */
  function copyBundle(name: string): string {
    const dir = path.join(tmp.dir, name);
    fs.cpSync(bundleDir, dir, { recursive: true });
    return dir;
  }

  async function expectImportFails(dir: string, pattern: RegExp): Promise<Error> {
    const target = new FileArtifactStore(path.join(tmp.dir, `${path.basename(dir)}-target`));
    const error = await importDataset({ bundle: new FileArtifactStore(dir), store: target }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).toMatch(pattern);
    for (const id of IDS) expect(error!.message).not.toContain(FULL_REPORT(id).slice(0, 20));
    const manifests: string[] = [];
    for await (const object of target.list('')) if (object.key.endsWith('pairs.jsonl')) manifests.push(object.key);
    expect(manifests).toEqual([]);
    return error!;
  }

  it('refuses a shard whose bytes changed, naming the shard, and writes nothing', async () => {
    const dir = copyBundle('tampered-shard');
    const file = path.join(dir, 'shard-000001.tar');
    const bytes = fs.readFileSync(file);
    bytes[600] ^= 0xff; // past the first header, same size: only the digest notices
    fs.writeFileSync(file, bytes);
    await expectImportFails(dir, /^shard-000001\.tar: sha256 [0-9a-f]{64} does not match dataset\.json/);
    const images = fs.existsSync(path.join(tmp.dir, 'tampered-shard-target'))
      ? fs.readdirSync(path.join(tmp.dir, 'tampered-shard-target'))
      : [];
    expect(images).toEqual([]);
  });

  /** Repacks a shard with its members changed by `edit`, and gives the card the new shard digest: only the per-sample checks can tell. */
  async function repackShard(dir: string, shard: string, edit: (members: Map<string, Buffer>) => void): Promise<void> {
    const members = new Map<string, Buffer>();
    const extract = tar.extract();
    fs.createReadStream(path.join(dir, shard)).pipe(extract as unknown as NodeJS.WritableStream);
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      members.set(entry.header.name, Buffer.concat(chunks));
    }
    edit(members);
    const pack = tar.pack();
    for (const [name, body] of members) pack.entry({ name }, body);
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const chunk of pack) chunks.push(chunk as Buffer);
    rewriteShard(dir, shard, () => Buffer.concat(chunks));
  }

  it('refuses an image that does not match its sha256, naming the shard and the sample, and publishes nothing of its shard', async () => {
    const dir = copyBundle('tampered-image');
    await repackShard(dir, 'shard-000000.tar', (members) => {
      const image = members.get('r_002.png')!;
      image[image.length - 1] ^= 0xff;
    });
    await expectImportFails(dir, /^shard-000000\.tar sample r_002: image sha256 does not match its \.json/);
    // The store checks each image as it stages it: the shard's batch is dropped, its staged files with it.
    const root = path.join(tmp.dir, 'tampered-image-target');
    const keys: string[] = [];
    for await (const object of new FileArtifactStore(root).list('')) keys.push(object.key);
    expect(keys.filter((k) => k.includes('/images/'))).toEqual([]);
    expect(fs.readdirSync(path.join(root, '.tmp'))).toEqual([]);
  });

  it('refuses a sample whose .json states no image sha256, naming the shard and the sample', async () => {
    const dir = copyBundle('no-image-digest');
    await repackShard(dir, 'shard-000001.tar', (members) => {
      const metadata = JSON.parse(members.get('r_003.json')!.toString('utf8')) as Record<string, unknown>;
      members.set('r_003.json', Buffer.from(JSON.stringify({ ...metadata, image_sha256: '' })));
    });
    await expectImportFails(dir, /^shard-000001\.tar sample r_003: \.json has no image_sha256/);
  });

  /** Rewrites a shard (its bytes through `edit`) and gives the card its new digest, so only the member checks can tell. */
  function rewriteShard(dir: string, shard: string, edit: (bytes: Buffer) => Buffer): void {
    const file = path.join(dir, shard);
    const bytes = edit(fs.readFileSync(file));
    fs.writeFileSync(file, bytes);
    const card = JSON.parse(fs.readFileSync(path.join(dir, 'dataset.json'), 'utf8')) as DatasetCard;
    const entry = card.shards.find((s) => s.key === shard)!;
    entry.sha256 = sha256Hex(bytes);
    entry.size_bytes = bytes.length;
    fs.writeFileSync(path.join(dir, 'dataset.json'), JSON.stringify(card));
  }

  it('refuses a member whose tar header declares 300 MB, from the header, naming the shard and the sample', async () => {
    const dir = copyBundle('huge-member');
    // The first member's ustar size field (octal, offset 124) says 300 MB; its checksum (offset 148) is redone.
    // The body stays a few hundred bytes, so reading it would fail as a truncated archive instead.
    rewriteShard(dir, 'shard-000000.tar', (bytes) => {
      const header = Buffer.from(bytes.subarray(0, 512));
      expect(header.toString('latin1', 0, 9)).toBe('r_001.png');
      header.write(`${(300_000_000).toString(8).padStart(11, '0')}\0`, 124, 'latin1');
      header.fill(' ', 148, 156);
      const sum = header.reduce((n, b) => n + b, 0);
      header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
      return Buffer.concat([header, bytes.subarray(512)]);
    });
    await expectImportFails(
      dir,
      /^shard-000000\.tar sample r_001: member \.png is 300000000 bytes, over the 67108864-byte limit for images; not read$/,
    );
  });

  it('caps .txt and .json members too, and the caps are options', async () => {
    const target = new FileArtifactStore(path.join(tmp.dir, 'small-caps-target'));
    const error = await importDataset({
      bundle: new FileArtifactStore(bundleDir),
      store: target,
      memberLimits: { textBytes: 16 },
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).toMatch(
      /^shard-000000\.tar sample r_001: member \.(txt|json) is \d+ bytes, over the 16-byte limit for \.txt and \.json members; not read$/,
    );
    expect(error?.message).not.toContain(FULL_REPORT('r.001').slice(0, 20));
  });

  it('refuses a bundle of another format, or with a missing shard', async () => {
    const other = copyBundle('other-format');
    const card = JSON.parse(fs.readFileSync(path.join(other, 'dataset.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(other, 'dataset.json'), JSON.stringify({ ...card, format: 'something/v9' }));
    await expectImportFails(other, /^dataset\.json: format "something\/v9" is not medsyn\.synthetic-dataset\/v1/);
    const missing = copyBundle('missing-shard');
    fs.rmSync(path.join(missing, 'shard-000002.tar'));
    await expectImportFails(missing, /^shard-000002\.tar: missing from the bundle/);
  });

  it('states an unspecified licence plainly, and refuses a recall without where it was measured, a missing manifest or nothing to export', async () => {
    const out = new FileArtifactStore(path.join(tmp.dir, 'no-licence'));
    const result = await exportDataset({
      store: source,
      pairs: [fixture.generic],
      out,
      card: { generator: { name: 'tiny-unet' } },
    });
    expect(result.card).toMatchObject({
      licence: 'unspecified',
      prompts: { source: 'unspecified' },
      deidentification: { mode: 'unspecified' },
    });
    const readme = (await getBuffer(out, 'README.md')).toString();
    expect(readme).toContain('unspecified: the publisher stated no licence');
    expect(readme).toContain('did not say how the texts were de-identified');
    await expect(
      exportDataset({
        store: source,
        pairs: [fixture.generic],
        out,
        card: { generator: { name: 'g' }, deid: { mode: 'mask', recall: 0.98 } },
      }),
    ).rejects.toThrow(/^card\.deid\.recallSource: is required/);
    await expect(
      exportDataset({ store: source, pairs: [fixture.generic, 'nope.jsonl'], out, card: CARD }),
    ).rejects.toThrow(/^pairs\[1\]: nope\.jsonl not found/);
    await putJsonl(source, 'empty/pairs.jsonl', [{ image: 'x.png' }, { report: 'no image' }]);
    await expect(exportDataset({ store: source, pairs: ['empty/pairs.jsonl'], out, card: CARD })).rejects.toThrow(
      'pairs: no pair to export (2 lines left out: 1 no report text, 1 no image reference)',
    );
  });

  it('fails an export whose image does not match the manifest sha256, naming the manifest line', async () => {
    const store = new FileArtifactStore(path.join(tmp.dir, 'bad-source'));
    const { pairs } = await writeSynthesizerOutput(store, ['a', 'b']);
    await store.put('synth/images/b.png', Buffer.from(fixture.images.get('r.001')!));
    await expect(
      exportDataset({ store, pairs: [pairs], out: new FileArtifactStore(path.join(tmp.dir, 'bad-out')), card: CARD }),
    ).rejects.toThrow(
      /^pairs: synth\/pairs-shard-00000-of-00001\.jsonl line 2: image synth\/images\/b\.png does not match its image_sha256/,
    );
  });

  it('fails an export whose bad image is in a later shard, after the earlier shards were written, and writes no card', async () => {
    const store = new FileArtifactStore(path.join(tmp.dir, 'bad-later-source'));
    const { pairs } = await writeSynthesizerOutput(store, ['a', 'b', 'c']);
    await store.put('synth/images/b.png', Buffer.from(fixture.images.get('r.001')!));
    const outDir = path.join(tmp.dir, 'bad-later-out');
    await expect(
      exportDataset({ store, pairs: [pairs], out: new FileArtifactStore(outDir), shardSize: 1, card: CARD }),
    ).rejects.toThrow(/line 2: image synth\/images\/b\.png does not match its image_sha256/);
    expect(fs.existsSync(path.join(outDir, 'dataset.json'))).toBe(false);
    expect(fs.existsSync(path.join(outDir, 'shard-000000.tar'))).toBe(true);
  });

  it('takes the generator digest from the PNGs the synthesizer stamped, and refuses images of another model', async () => {
    const stamped = new FileArtifactStore(path.join(tmp.dir, 'stamped'));
    const model = 'b'.repeat(64);
    const { pairs } = await writeSynthesizerOutput(stamped, ['m1', 'm2'], () => model);
    const out = new FileArtifactStore(path.join(tmp.dir, 'stamped-out'));
    const result = await exportDataset({
      store: stamped,
      pairs: [pairs],
      out,
      card: { generator: { name: 'tiny-unet' } },
    });
    expect(result.card.generator).toEqual({ name: 'tiny-unet', sha256: model });
    await expect(exportDataset({ store: stamped, pairs: [pairs], out, card: CARD })).rejects.toThrow(
      `card.generator.sha256: ${pairs} line 1: image synth/images/m1.png was made by model ${model}, not ${CARD.generator.sha256}`,
    );
    const mixed = new FileArtifactStore(path.join(tmp.dir, 'mixed'));
    const two = await writeSynthesizerOutput(mixed, ['m1', 'm2'], (i) => (i === 0 ? model : 'c'.repeat(64)));
    await expect(
      exportDataset({ store: mixed, pairs: [two.pairs], out, card: { generator: { name: 'tiny-unet' } } }),
    ).rejects.toThrow(/^pairs: the images come from 2 models/);
  });

  it('leaves no manifest when writing an image fails, and reports the store error', async () => {
    const target = new FileArtifactStore(path.join(tmp.dir, 'failing-target'));
    let puts = 0;
    // Images go through a batch per shard: its third put fails (the first of the second shard), after the first shard was committed.
    const failing: ArtifactStore = Object.assign(Object.create(target) as ArtifactStore, {
      batch: () => {
        const batch = target.batch();
        return Object.assign(Object.create(batch) as ArtifactBatch, {
          put: (
            key: string,
            body: Parameters<ArtifactBatch['put']>[1],
            options?: Parameters<ArtifactBatch['put']>[2],
          ) =>
            key.includes('/images/') && ++puts === 3
              ? Promise.reject(new Error('disk full'))
              : batch.put(key, body, options),
        });
      },
    });
    await expect(importDataset({ bundle: new FileArtifactStore(bundleDir), store: failing })).rejects.toThrow(
      'disk full',
    );
    const keys: string[] = [];
    for await (const object of target.list('')) keys.push(object.key);
    expect(keys.filter((k) => k.endsWith('pairs.jsonl'))).toEqual([]);
    expect(keys.filter((k) => k.includes('/images/')).length).toBeGreaterThan(0);
  });

  it('reports a shard commit that fails while the next shard is staged, and leaves no manifest and nothing staged', async () => {
    const root = path.join(tmp.dir, 'failing-commit');
    const target = new FileArtifactStore(root);
    let batches = 0;
    const failing: ArtifactStore = Object.assign(Object.create(target) as ArtifactStore, {
      batch: () => {
        const batch = target.batch();
        if (++batches !== 1) return batch;
        return Object.assign(Object.create(batch) as ArtifactBatch, {
          commit: async () => {
            await batch.abort();
            throw new Error('sync failed');
          },
        });
      },
    });
    await expect(importDataset({ bundle: new FileArtifactStore(bundleDir), store: failing })).rejects.toThrow(
      'sync failed',
    );
    expect(batches).toBe(2);
    const keys: string[] = [];
    for await (const object of target.list('')) keys.push(object.key);
    expect(keys.filter((k) => k.endsWith('pairs.jsonl') || k.includes('/images/'))).toEqual([]);
    expect(fs.readdirSync(path.join(root, '.tmp'))).toEqual([]);
  });

  describe('through S3', () => {
    let s3: S3Server;
    let store: ArtifactStore;
    beforeAll(async () => {
      s3 = await startS3Server(['medsyn']);
      store = openStore(`s3://medsyn/work?endpoint=${s3.endpoint}`, s3.env);
    });
    afterAll(async () => {
      await store?.close();
      await s3?.stop();
    });

    it('exports from an S3 store to an S3 prefix and imports from there', async () => {
      const fixtureS3 = await writeSynthesizerOutput(store, ['s1', 's2', 's3']);
      const result = await exportDataset({
        store,
        pairs: [fixtureS3.pairs],
        reports: fixtureS3.reports,
        out: store,
        outPrefix: 'bundles/tiny/',
        shardSize: 2,
        card: CARD,
      });
      expect(result.shards.map((s) => s.key)).toEqual([
        'bundles/tiny/shard-000000.tar',
        'bundles/tiny/shard-000001.tar',
      ]);
      expect(result.cardKey).toBe('bundles/tiny/dataset.json');
      const target = new FileArtifactStore(path.join(tmp.dir, 's3-target'));
      const imported = await importDataset({
        bundle: store,
        bundlePrefix: 'bundles/tiny/',
        store: target,
        prefix: 'synthetic/',
      });
      expect(imported.manifestKey).toBe('synthetic/pairs.jsonl');
      const loaded = await readSynthetic(target, imported.manifestKey);
      expect(loaded.records.map((r) => r.report)).toEqual([FULL_REPORT('s1'), FULL_REPORT('s2'), PROMPT('s3')]);
      for (const [i, id] of ['s1', 's2', 's3'].entries())
        expect(await getBuffer(target, loaded.records[i]!.imageKey)).toEqual(fixtureS3.images.get(id));
    });
  });
});
