import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeWithSharedData, makeTempDir, sharedDataDir } from '@medsyn/testing';
import { SPECIAL_TOKENS, WordPieceError, WordPieceTokenizer } from '../src';
import { learnMerges } from '../src/merges';

const temp = makeTempDir('wordpiece');
afterAll(() => temp.remove());

const REFERENCE = join(__dirname, 'python', 'bert_wordpiece.py');
const METADATA = join(sharedDataDir, 'covid-cxr', 'metadata.csv');

/** Texts that exercise BERT's basic tokeniser: accents, punctuation, CJK, controls, odd spaces, long words. */
const EDGE_CASES = [
  'Café Émile: RÉSUMÉ of naïve façade — “quoted” (parenthesised) [bracketed] {braced}',
  'Kerley B lines; Swan-Ganz tip at T12, C5-6 fusion, 3.5 cm nodule, 10% volume... XXXX',
  'tab\tseparated\nnew line\r\nand\u00a0no-break\u2003em space',
  'control\u0000chars\u0007removed\ufffd here',
  '中文字符 mixed with English 肺炎',
  'a'.repeat(120) + ' overlong word',
  '',
  '   ',
];

function reference(
  vocabPath: string,
  texts: string[],
  maxLength: number,
  lowercase: boolean,
): { ids: number[][]; masks: number[][] } {
  const request = join(temp.dir, 'request.json');
  writeFileSync(request, JSON.stringify({ vocab: vocabPath, texts, max_length: maxLength, lowercase }));
  return JSON.parse(
    execFileSync('/usr/bin/python3', [REFERENCE, 'encode', request], { encoding: 'utf8', maxBuffer: 64 << 20 }),
  );
}

describeWithSharedData('WordPieceTokenizer', () => {
  let notes: string[];
  let trained: WordPieceTokenizer;
  let vocabPath: string;

  beforeAll(() => {
    notes = JSON.parse(execFileSync('/usr/bin/python3', [REFERENCE, 'notes', METADATA, '120'], { encoding: 'utf8' }));
    trained = WordPieceTokenizer.train(notes.slice(0, 80), { vocabSize: 600, maxLength: 64 });
    vocabPath = join(temp.dir, 'vocab.txt');
    writeFileSync(vocabPath, trained.vocabTxt());
  });

  it('trains the same vocabulary in every process (the tokenizers trainer broke ties in hash-map order)', () => {
    const corpus = join(temp.dir, 'corpus.json');
    writeFileSync(corpus, JSON.stringify(notes));
    // A vocabulary large enough that its last merges are among pairs seen once or twice: ties everywhere.
    const script = `const { WordPieceTokenizer } = require(${JSON.stringify(join(__dirname, '..', 'src'))}); const notes = require(${JSON.stringify(corpus)}); process.stdout.write(WordPieceTokenizer.train(notes, { vocabSize: 2500, maxLength: 64 }).vocabTxt());`;
    const run = () =>
      execFileSync(process.execPath, ['--conditions=medsyn-source', '--import', 'tsx', '-e', script], {
        encoding: 'utf8',
        maxBuffer: 64 << 20,
      });
    const first = run();
    expect(first.split('\n').length).toBeGreaterThan(2000);
    expect(run()).toBe(first);
    expect(WordPieceTokenizer.train(notes, { vocabSize: 2500, maxLength: 64 }).vocabTxt()).toBe(first);
  });

  it('trains a vocabulary on reports: special tokens first, capped at vocab_size, every character covered', async () => {
    expect(trained.vocab.slice(0, SPECIAL_TOKENS.length)).toEqual([...SPECIAL_TOKENS]);
    expect(trained.vocab.length).toBe(600);
    expect(new Set(trained.vocab).size).toBe(600);
    // A training report never needs [UNK]: every character it has is in the vocabulary.
    const tokens = await trained.tokens(notes[0]);
    expect(tokens).not.toContain('[UNK]');
    expect(tokens.some((t) => t.startsWith('##'))).toBe(true);
  });

  it('gives the ids of an independent BERT reference on held-out reports and edge cases (lower-cased)', async () => {
    const texts = [...notes.slice(80), ...EDGE_CASES];
    const loaded = WordPieceTokenizer.fromVocab(trained.vocabTxt(), { maxLength: 64 });
    const expected = reference(vocabPath, texts, 64, true);
    const batch = await loaded.encodeBatch(texts);
    expect(batch.batch).toBe(texts.length);
    const rows = (a: BigInt64Array) => texts.map((_, r) => Array.from(a.subarray(r * 64, (r + 1) * 64), Number));
    expect(rows(batch.inputIds)).toEqual(expected.ids);
    expect(rows(batch.attentionMask)).toEqual(expected.masks);
    // Long reports are truncated to [CLS] + 62 pieces + [SEP].
    expect(expected.masks.some((m) => m.every((v) => v === 1))).toBe(true);
  });

  it('keeps case and accents when lowercase is false, like a cased BERT', async () => {
    const vocab = [...SPECIAL_TOKENS, 'The', 'the', 'É', '##mile', 'lung', '##s', 'are', 'clear', '.', ',', 'e', '##e'];
    const path = join(temp.dir, 'cased.txt');
    writeFileSync(path, vocab.join('\n') + '\n');
    const cased = WordPieceTokenizer.fromVocab(vocab.join('\n'), { maxLength: 16, lowercase: false });
    const texts = ['The lungs are clear.', 'Émile, the lungs.', 'THE LUNGS'];
    const expected = reference(path, texts, 16, false);
    for (const [i, text] of texts.entries()) expect((await cased.encode(text)).inputIds).toEqual(expected.ids[i]);
    expect(await cased.tokens('Émile, the lungs.')).toEqual([
      '[CLS]',
      'É',
      '##mile',
      ',',
      'the',
      'lung',
      '##s',
      '.',
      '[SEP]',
    ]);
  });

  it('refuses vocabularies and options it cannot use, with clear errors', () => {
    expect(() => WordPieceTokenizer.fromVocab('', { maxLength: 8 })).toThrow(/empty/);
    expect(() => WordPieceTokenizer.fromVocab('[PAD]\n[UNK]\n[CLS]\n', { maxLength: 8 })).toThrow(/no \[SEP\]/);
    expect(() => WordPieceTokenizer.fromVocab('[PAD]\n[UNK]\n[CLS]\n[SEP]\na\na\n', { maxLength: 8 })).toThrow(
      /line 6 repeats a token of line 5/,
    );
    expect(() => WordPieceTokenizer.fromVocab('[PAD]\n[UNK]\n[CLS]\n[SEP]\n', { maxLength: 1 })).toThrow(
      WordPieceError,
    );
    expect(() => WordPieceTokenizer.train(['abcdefghij'], { vocabSize: 8, maxLength: 8 })).toThrow(
      /vocab_size 8 is too small/,
    );
  });
});

describe('learnMerges', () => {
  it('merges the most frequent pair first, and among equals a word-start pair, then code-unit order', () => {
    expect(learnMerges([{ pieces: ['a', '##b', '##c'], count: 1 }], 10)).toEqual(['ab', 'abc']);
    expect(
      learnMerges(
        [
          { pieces: ['c', '##d'], count: 1 },
          { pieces: ['a', '##b'], count: 1 },
        ],
        10,
      ),
    ).toEqual(['ab', 'cd']);
    // "##b ##c" occurs 3 times against 2 for "a ##b": frequency wins over position.
    expect(
      learnMerges(
        [
          { pieces: ['a', '##b', '##c'], count: 2 },
          { pieces: ['x', '##b', '##c'], count: 1 },
        ],
        1,
      ),
    ).toEqual(['##bc']);
    // "aaa" once and "baa" three times: "##a ##a" (4) first, then "b ##aa" (3), then "a ##aa" (1).
    expect(
      learnMerges(
        [
          { pieces: ['a', '##a', '##a'], count: 1 },
          { pieces: ['b', '##a', '##a'], count: 3 },
        ],
        10,
      ),
    ).toEqual(['##aa', 'baa', 'aaa']);
  });
});
