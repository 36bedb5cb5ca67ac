import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from '@medsyn/testing';
import {
  ClipTokenizer,
  CLIP_MAX_LENGTH,
  clipMergeLines,
  countTokens,
  defaultClipTokenizer,
  encode,
  writeClipTokenizerFiles,
} from '../src';

const PROMPTS = [
  'a photo of a cat',
  'Small LEFT pleural effusion. No pneumothorax.',
  "There's mild cardiomegaly; it's unchanged since 2019-03-04 (5.2 cm).",
  'ET tube tip 4cm above the carina, NG tube in the stomach!! Right PICC -> SVC',
  'Bibasilar   atelectasis\n\tand   Kerley B lines; Swan-Ganz catheter @ 45°',
  'naïve café façade résumé µg ≥ 3 × 10⁹/L',
  '肺炎 без изменений 😀 <|endoftext|> done',
  '',
];

/** Ids from the Python transcription of CLIP's published simple_tokenizer (test/python). */
function pythonReferenceIds(mergesFile: string, texts: string[]): number[][] {
  const out = execFileSync('/usr/bin/python3', [path.join(__dirname, 'python', 'simple_tokenizer.py')], {
    input: JSON.stringify({ merges: mergesFile, texts }),
    maxBuffer: 64 << 20,
  });
  return JSON.parse(out.toString()) as number[][];
}

describe('CLIP tokenizer', () => {
  const tmp = makeTempDir('clip-tokenizer');
  afterAll(() => tmp.remove());

  it('gives the published CLIP ids for "a photo of a cat"', () => {
    // The example in OpenAI CLIP's README / Hugging Face CLIPTokenizer docs.
    expect(encode('a photo of a cat').ids.slice(0, 7)).toEqual([49406, 320, 1125, 539, 320, 2368, 49407]);
    expect(defaultClipTokenizer().vocabSize).toBe(49408);
  });

  it('matches the simple_tokenizer reference with the full CLIP vocabulary', () => {
    const mergesFile = path.join(tmp.dir, 'clip-merges.txt');
    fs.writeFileSync(mergesFile, ['#version: 0.2', ...clipMergeLines()].join('\n'));
    const expected = pythonReferenceIds(mergesFile, PROMPTS);
    const tokenizer = defaultClipTokenizer();
    PROMPTS.forEach((prompt, i) =>
      expect({ prompt, ids: tokenizer.tokenize(prompt) }).toEqual({ prompt, ids: expected[i] }),
    );
  });

  it('loads an export tokenizer/ directory (vocab.json + merges.txt) and matches the reference', () => {
    const dir = path.join(tmp.dir, 'small');
    writeClipTokenizerFiles(dir, { mergeCount: 3000, padToken: '!' });
    const tokenizer = ClipTokenizer.fromDirectory(dir);
    expect(tokenizer.vocabSize).toBe(512 + 3000 + 2);
    expect([tokenizer.bosId, tokenizer.eosId, tokenizer.padId]).toEqual([3512, 3513, 0]); // SD 2.x pads with "!"
    const expected = pythonReferenceIds(path.join(dir, 'merges.txt'), PROMPTS);
    PROMPTS.forEach((prompt, i) =>
      expect({ prompt, ids: tokenizer.tokenize(prompt) }).toEqual({ prompt, ids: expected[i] }),
    );
  });

  it('prefers tokenizer.json when the export has one', () => {
    const dir = path.join(tmp.dir, 'json');
    writeClipTokenizerFiles(dir, { mergeCount: 1000, withTokenizerJson: true });
    fs.writeFileSync(path.join(dir, 'merges.txt'), 'not a merges file'); // must not be read
    const fromJson = ClipTokenizer.fromDirectory(dir);
    const reference = ClipTokenizer.fromVocabulary({
      vocab: JSON.parse(fs.readFileSync(path.join(dir, 'vocab.json'), 'utf8')),
      merges: clipMergeLines().slice(0, 1000),
    });
    expect(fromJson.encode(PROMPTS[1])).toEqual(reference.encode(PROMPTS[1]));
  });

  it('adds start/end tokens, pads to 77 and masks the padding', () => {
    const { ids, attentionMask, tokenCount, truncated } = encode('No acute cardiopulmonary process.');
    const tokenizer = defaultClipTokenizer();
    expect(ids).toHaveLength(CLIP_MAX_LENGTH);
    expect(ids[0]).toBe(tokenizer.bosId);
    expect(ids[tokenCount - 1]).toBe(tokenizer.eosId);
    expect(ids.slice(tokenCount).every((id) => id === tokenizer.padId)).toBe(true);
    expect(attentionMask.reduce((a, b) => a + b, 0)).toBe(tokenCount);
    expect(truncated).toBe(false);
    expect(countTokens('No acute cardiopulmonary process.')).toBe(tokenCount);
  });

  it('reports truncation and keeps the end token', () => {
    const long = Array.from({ length: 100 }, (_, i) => `finding${i % 10}`).join(' ');
    const result = encode(long);
    expect(result.truncated).toBe(true);
    expect(result.tokenCount).toBeGreaterThan(CLIP_MAX_LENGTH);
    expect(result.ids).toHaveLength(CLIP_MAX_LENGTH);
    expect(result.ids[CLIP_MAX_LENGTH - 1]).toBe(defaultClipTokenizer().eosId);
    expect(result.attentionMask.every((m) => m === 1)).toBe(true);
    // exactly 75 prompt tokens fit
    const words75 = Array.from({ length: 75 }, () => 'lung').join(' ');
    expect(encode(words75)).toMatchObject({ tokenCount: 77, truncated: false });
    expect(encode(`${words75} lung`)).toMatchObject({ tokenCount: 78, truncated: true });
  });

  it('names the missing file when a tokenizer directory is incomplete', () => {
    const dir = path.join(tmp.dir, 'broken');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'vocab.json'), '{}');
    expect(() => ClipTokenizer.fromDirectory(dir)).toThrow(/neither tokenizer.json nor vocab.json \+ merges.txt/);
    fs.writeFileSync(path.join(dir, 'merges.txt'), '#version: 0.2\n');
    fs.writeFileSync(path.join(dir, 'vocab.json'), '{not json');
    expect(() => ClipTokenizer.fromDirectory(dir)).toThrow(/cannot read vocab.json/);
  });
});
