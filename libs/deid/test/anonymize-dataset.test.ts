import { FileArtifactStore, getBuffer } from '@medsyn/artifact-store';
import { makeTempDir } from '@medsyn/testing';
import { Anonymizer, anonymizeDataset, createDetector, type AnonymizeDatasetSpec } from '../src';

const anonymizer = new Anonymizer({ surrogateSecret: 'dataset-test-secret-0123' });
const lines = (buffer: Buffer) =>
  buffer
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('anonymizeDataset', () => {
  const temp = makeTempDir('deid-dataset');
  const store = new FileArtifactStore(temp.dir);
  afterAll(() => temp.remove());

  const records = Array.from({ length: 7 }, (_, i) =>
    JSON.stringify({
      id: `r${i}`,
      text: `FINDINGS: Discussed with Dr. Okafor on 3/${i + 1}. IMPRESSION: Case ${i} stable.`,
      mrn: 'p1',
    }),
  );
  const manifest = [...records.slice(0, 3), '{broken', JSON.stringify({ id: 'no-text' }), ...records.slice(3)].join(
    '\n',
  );
  const spec = (prefix: string): AnonymizeDatasetSpec => ({
    inputKey: 'in/reports.jsonl',
    format: 'jsonl',
    idField: 'id',
    textField: 'text',
    patientKeyField: 'mrn',
    mode: 'mask',
    omitSpans: false,
    outputPrefix: prefix,
    partSize: 2,
  });

  it('writes the anonymized manifest, the prompts and a per-record error list', async () => {
    await store.put('in/reports.jsonl', manifest);
    const result = await anonymizeDataset(store, spec('out/a/'), anonymizer);
    expect(result).toMatchObject({ completed: 7, failed: 2, parts: 5 });
    const anonymized = lines(await getBuffer(store, 'out/a/anonymized.jsonl'));
    expect(anonymized.map((r) => r.id)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6']);
    expect(anonymized[0]).toMatchObject({
      text: 'FINDINGS: Discussed with Dr. ___ on ___. IMPRESSION: Case 0 stable.',
      prompt: { text: 'Case 0 stable.', source_section: 'IMPRESSION' },
    });
    expect(JSON.stringify(anonymized)).not.toContain('Okafor');
    expect(lines(await getBuffer(store, 'out/a/prompts.jsonl'))[1]).toMatchObject({
      id: 'r1',
      prompt: 'Case 1 stable.',
    });
    expect(lines(await getBuffer(store, 'out/a/errors.jsonl'))).toEqual([
      { line: 4, id: '', code: 'INVALID_ARGUMENT', field: 'line', message: 'line 4: invalid JSON' },
      { line: 5, id: 'no-text', code: 'INVALID_ARGUMENT', field: 'text', message: 'text: missing' },
    ]);
  });

  it('resumes a stopped run without losing or repeating a record', async () => {
    const controller = new AbortController();
    await expect(
      anonymizeDataset(store, spec('out/b/'), anonymizer, {
        signal: controller.signal,
        onProgress: (p) => p.parts === 2 && controller.abort('shutdown'),
      }),
    ).rejects.toBeDefined();
    const calls = jest.spyOn(anonymizer, 'anonymize');
    const result = await anonymizeDataset(store, spec('out/b/'), anonymizer);
    // Parts 0 and 1 (4 lines, 3 reports + 1 broken line) were done: only the rest runs again.
    expect(calls).toHaveBeenCalledTimes(4);
    calls.mockRestore();
    expect(result).toMatchObject({ completed: 7, failed: 2 });
    expect(await getBuffer(store, 'out/b/anonymized.jsonl')).toEqual(await getBuffer(store, 'out/a/anonymized.jsonl'));
  });

  it('reads CSV manifests', async () => {
    await store.put('in/reports.csv', 'uid,findings\n1,"Seen by Dr. Okafor, 92-year-old."\n2,Clear lungs.\n');
    const result = await anonymizeDataset(
      store,
      {
        ...spec('out/c/'),
        inputKey: 'in/reports.csv',
        format: 'csv',
        idField: 'uid',
        textField: 'findings',
        patientKeyField: '',
      },
      anonymizer,
    );
    expect(result).toMatchObject({ completed: 2, failed: 0 });
    expect(lines(await getBuffer(store, 'out/c/anonymized.jsonl')).map((r) => r.text)).toEqual([
      'Seen by Dr. ___, ___-year-old.',
      'Clear lungs.',
    ]);
  });
});

describe('record ids in a dataset', () => {
  const temp = makeTempDir('deid-dataset-ids');
  const store = new FileArtifactStore(temp.dir);
  afterAll(() => temp.remove());
  const rulesOnly = new Anonymizer({ detector: createDetector('rules') });

  it('reports an id holding PHI (or too long, or of other characters) by its line only, never copying it anywhere', async () => {
    const phiId = 'John Smith 555-123-4567';
    const records = [
      { id: 'ok-1:a.b_c', text: 'IMPRESSION: Stable.' },
      { id: phiId, text: 'IMPRESSION: Stable.' },
      { id: 'x'.repeat(129), text: 'IMPRESSION: Stable.' },
      { id: 'x'.repeat(128), text: 'IMPRESSION: Stable.' },
    ];
    await store.put('in/ids.jsonl', records.map((r) => JSON.stringify(r)).join('\n'));
    const spec: AnonymizeDatasetSpec = {
      inputKey: 'in/ids.jsonl',
      format: 'jsonl',
      idField: 'id',
      textField: 'text',
      patientKeyField: '',
      mode: 'mask',
      omitSpans: false,
      outputPrefix: 'out/ids/',
    };
    const result = await anonymizeDataset(store, spec, rulesOnly);
    expect(result).toMatchObject({ completed: 2, failed: 2 });
    expect(lines(await getBuffer(store, 'out/ids/anonymized.jsonl')).map((r) => r.id)).toEqual([
      'ok-1:a.b_c',
      'x'.repeat(128),
    ]);
    const errors = lines(await getBuffer(store, 'out/ids/errors.jsonl'));
    expect(errors).toEqual(
      [2, 3].map((line) => ({
        line,
        id: '',
        code: 'INVALID_ARGUMENT',
        field: 'id',
        message: expect.stringMatching(/^id: must be 1 to 128 characters/),
      })),
    );
    for await (const object of store.list('out/ids/'))
      expect((await getBuffer(store, object.key)).toString('utf8')).not.toMatch(/John Smith|555-123-4567|x{129}/);
  });
});
