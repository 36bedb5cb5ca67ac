import { FileArtifactStore, putJsonl } from '@medsyn/artifact-store';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { makeTempDir } from '@medsyn/testing';
import { PairManifestError, parsePairLine, readPairManifests, type PairLine } from '../src';

const temp = makeTempDir('pair-manifest');
afterAll(() => temp.remove());
const store = new FileArtifactStore(temp.dir);

describe('pair manifests', () => {
  beforeAll(() => store.check());

  it('reads real and synthesizer manifests; malformed, incomplete and rejected lines are skipped and counted', async () => {
    await store.put('real/a.png', encodeGrayPng(grayImage(4, 4)));
    await store.put(
      'real/pairs.jsonl',
      '{"image": "a.png", "report": "Clear."}\nnot json\n{"image": "a.png"}\n{"report": "No image."}\n',
    );
    const synthesized: PairLine[] = [
      { id: 's1', image: store.uriOf('synth/images/1.png'), report: 'Small effusion.', accepted: true },
      { id: 's2', image: store.uriOf('synth/images/2.png'), report: 'Edema.', accepted: false },
      { id: 's3', image: 'file:///elsewhere/3.png', report: 'Edema.' },
    ];
    await putJsonl(store, 'synth/pairs.jsonl', synthesized);
    const loaded = await readPairManifests(store, [
      { source: 'real', manifests: ['real/pairs.jsonl'], field: (i) => `real[${i}]` },
      { source: 'synthetic', manifests: [store.uriOf('synth/pairs.jsonl')], field: (i) => `synthetic[${i}]` },
    ]);
    expect(loaded.records.map((r) => [r.source, r.imageKey, r.report, r.id])).toEqual([
      ['real', 'real/a.png', 'Clear.', undefined],
      ['synthetic', 'synth/images/1.png', 'Small effusion.', 's1'],
    ]);
    expect(loaded.skipped.map((s) => [s.lineNumber, s.reason])).toEqual([
      [2, 'invalid JSON'],
      [3, 'no report text'],
      [4, 'no image reference'],
      [2, 'image rejected by the quality gate'],
      [3, 'image outside the artifact store'],
    ]);
    expect(loaded.inputs.map((i) => i.sha256)).toEqual([
      (await store.stat('real/pairs.jsonl'))!.sha256,
      (await store.stat('synth/pairs.jsonl'))!.sha256,
    ]);
  });

  it("reads the synthesizer's lines written before #19 (image_uri, report_id, prompt) as today's lines", () => {
    const today = {
      id: 'r1',
      image: 'file:///store/images/r1.png',
      report: 'Small effusion.',
      image_sha256: 'a'.repeat(64),
      seed: '42',
      accepted: true,
      attempts: 1,
      rejections: {},
      prompt_truncated: false,
    };
    const { id, image, report, ...rest } = today;
    const before = { image_uri: image, report_id: id, prompt: report, ...rest };
    expect(parsePairLine(before)).toEqual({ ok: true, line: today });
    expect(parsePairLine({ image: 'a.png', text: 'Clear.' })).toEqual({
      ok: true,
      line: { image: 'a.png', report: 'Clear.' },
    });
    // The one spelling wins where a line has both.
    expect(parsePairLine({ image: 'new.png', image_uri: 'old.png', report: 'x' })).toMatchObject({
      line: { image: 'new.png' },
    });
  });

  it('names the field that gave a manifest that is missing or outside the store', async () => {
    const read = (manifest: string) =>
      readPairManifests(store, [
        { source: 'real', manifests: ['real/pairs.jsonl', manifest], field: (i) => `pairs[${i}]` },
      ]);
    await expect(read('nowhere.jsonl')).rejects.toThrow(
      new PairManifestError('pairs[1]', 'manifest nowhere.jsonl not found'),
    );
    await expect(read('file:///elsewhere/pairs.jsonl')).rejects.toThrow(PairManifestError);
  });
});
