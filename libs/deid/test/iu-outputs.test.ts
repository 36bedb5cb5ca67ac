import * as fs from 'node:fs';
import * as path from 'node:path';
import { countTokens } from '@medsyn/clip-tokenizer';
import { Anonymizer, buildPrompt, type AnonymizedReport } from '../src';

// Outputs of the anonymizer (mask mode) on a sample of IU X-ray reports, recorded before the
// prompt builder was made faster: every speed-up must leave texts, spans, sections and prompts
// exactly as they were. The sample keeps every report with a span, every report whose prompt was
// cut inside its first sentence, every 12th other cut prompt and every 40th report.
const FIXTURE = path.join(__dirname, 'fixtures/iu-anonymized-sample.jsonl');

describe('anonymizer outputs on the IU X-ray sample', () => {
  const lines = fs
    .readFileSync(FIXTURE, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { id: string; text: string; expected: AnonymizedReport });

  it('covers prompts cut at a sentence, cut inside a sentence and not cut', () => {
    const prompts = lines.map((l) => l.expected.prompt);
    expect(prompts.filter((p) => !p.truncated).length).toBeGreaterThan(50);
    expect(prompts.filter((p) => p.truncated && /[.!?;]$/.test(p.text)).length).toBeGreaterThan(50);
    expect(prompts.filter((p) => p.truncated && !/[.!?;]$/.test(p.text)).length).toBeGreaterThan(0);
  });

  it('gives the recorded text, spans, sections and prompt for every report', async () => {
    const anonymizer = new Anonymizer({ tokenCounter: { countTokens } });
    for (const { id, text, expected } of lines)
      expect(await anonymizer.anonymize({ id, text }, 'mask')).toEqual(expected);
  });

  it('counts prompt tokens as the CLIP tokenizer counts the whole prompt', () => {
    for (const { expected } of lines) expect(expected.prompt.tokenCount).toBe(countTokens(expected.prompt.text));
  });

  it('counts every word as the CLIP tokenizer does, whatever its case, punctuation or script', () => {
    const words = new Set(lines.flatMap((l) => l.text.split(/\s+/)).filter(Boolean));
    for (const word of [
      "patient's",
      "O'Brien.",
      '<|endoftext|>',
      '(<|startoftext|>)',
      'C5-6,',
      'x-XXXX.',
      'Café.',
      'naïve',
      '3.2cm',
      '10mm)',
      'T12-L1;',
      '2021-03-04',
      'Swan-Ganz',
      '(left).',
      '...',
      'e.g.',
      '"quoted"',
      '___',
      '\uFFFD',
      'ＡＢＣ',
    ])
      words.add(word);
    const counter = { countTokens };
    for (const word of words) {
      const expected = countTokens(word);
      if (expected > 77) continue;
      const prompt = buildPrompt([{ name: 'OTHER', heading: '', text: word, start: 0, end: word.length }], counter);
      expect([word, prompt.tokenCount]).toEqual([word, expected]);
    }
  });
});
