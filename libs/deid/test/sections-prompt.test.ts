import { Readable } from 'node:stream';
import { countTokens } from '@medsyn/clip-tokenizer';
import { buildPrompt, parseSections, readRecords, type RecordLine } from '../src';

const clip = { countTokens };

describe('parseSections', () => {
  it('reads MIMIC-style headings', () => {
    const text =
      'FINAL REPORT\nEXAMINATION: CHEST (PA AND LAT)\nINDICATION: ___ with cough.\nTECHNIQUE: Two views.\nCOMPARISON: None.\nFINDINGS:\n\nLungs are clear.\n\nIMPRESSION: No acute process.';
    expect(parseSections(text).map((s) => [s.name, s.heading, s.text])).toEqual([
      ['OTHER', '', 'FINAL REPORT'],
      ['TECHNIQUE', 'EXAMINATION', 'CHEST (PA AND LAT)'],
      ['INDICATION', 'INDICATION', '___ with cough.'],
      ['TECHNIQUE', 'TECHNIQUE', 'Two views.'],
      ['COMPARISON', 'COMPARISON', 'None.'],
      ['FINDINGS', 'FINDINGS', 'Lungs are clear.'],
      ['IMPRESSION', 'IMPRESSION', 'No acute process.'],
    ]);
  });

  it('reads free-form and IU-style headings, inline or alone on a line', () => {
    const text =
      'Clinical history: Chest pain. Comparison: 2 views. Findings: Heart normal.\nCONCLUSION\nNormal chest x-XXXX.';
    expect(parseSections(text).map((s) => [s.name, s.text])).toEqual([
      ['INDICATION', 'Chest pain.'],
      ['COMPARISON', '2 views.'],
      ['FINDINGS', 'Heart normal.'],
      ['IMPRESSION', 'Normal chest x-XXXX.'],
    ]);
  });

  it('keeps a report without headings as one OTHER section', () => {
    expect(parseSections('Lungs clear. Patient: stable.').map((s) => s.name)).toEqual(['OTHER']);
  });
});

describe('buildPrompt', () => {
  it('takes IMPRESSION first, with whitespace normalised', () => {
    const prompt = buildPrompt(parseSections('FINDINGS: Lungs clear.\nIMPRESSION:  No acute\n  process.'), clip);
    expect(prompt).toEqual({
      text: 'No acute process.',
      sourceSection: 'IMPRESSION',
      tokenCount: countTokens('No acute process.'),
      truncated: false,
    });
  });

  it('falls back to FINDINGS', () => {
    expect(buildPrompt(parseSections('INDICATION: cough.\nFINDINGS: Lungs clear.'), clip)).toMatchObject({
      text: 'Lungs clear.',
      sourceSection: 'FINDINGS',
    });
  });

  it('cuts a long section to 77 CLIP tokens at a sentence boundary', () => {
    const sentences = Array.from(
      { length: 12 },
      (_, i) => `Finding number ${i + 1} shows a stable small nodule in the lower lobe.`,
    );
    const prompt = buildPrompt(parseSections(`IMPRESSION: ${sentences.join(' ')}`), clip);
    expect(prompt.truncated).toBe(true);
    expect(prompt.tokenCount).toBeLessThanOrEqual(77);
    expect(prompt.tokenCount).toBe(countTokens(prompt.text));
    expect(prompt.text).toMatch(/\.$/);
    const next = `${prompt.text} ${sentences[prompt.text.split('. ').length]}`;
    expect(countTokens(next)).toBeGreaterThan(77);
  });

  it('cuts a single overlong sentence at a word boundary', () => {
    const prompt = buildPrompt(parseSections(`IMPRESSION: ${'stable bilateral opacities '.repeat(40)}`), clip);
    expect(prompt).toMatchObject({ truncated: true });
    expect(prompt.tokenCount).toBeLessThanOrEqual(77);
    expect(countTokens(`${prompt.text} stable`)).toBeGreaterThan(77);
  });
});

describe('readRecords', () => {
  const collect = async (text: string, format: 'jsonl' | 'csv') => {
    const out: RecordLine[] = [];
    for await (const line of readRecords(Readable.from([text]), format)) out.push(line);
    return out;
  };

  it('reports a malformed JSON line by number and goes on', async () => {
    const lines = await collect('{"id":"a","text":"x"}\n{broken\n\n[1]\n{"id":"b","text":"y"}\n', 'jsonl');
    expect(lines).toEqual([
      { lineNumber: 1, ok: true, record: { id: 'a', text: 'x' } },
      { lineNumber: 2, ok: false, error: 'invalid JSON' },
      { lineNumber: 4, ok: false, error: 'not a JSON object' },
      { lineNumber: 5, ok: true, record: { id: 'b', text: 'y' } },
    ]);
  });

  it('reads CSV with quoted newlines and skips a malformed row', async () => {
    const lines = await collect('id,text\na,"two\nlines"\nb,too,many\nc,ok\n', 'csv');
    expect(lines.filter((l) => l.ok).map((l) => (l as { record: unknown }).record)).toEqual([
      { id: 'a', text: 'two\nlines' },
      { id: 'c', text: 'ok' },
    ]);
    expect(lines.filter((l) => !l.ok)).toHaveLength(1);
  });
});
