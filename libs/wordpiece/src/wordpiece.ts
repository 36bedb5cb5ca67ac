import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer, WordPiece, bertNormalizer, bertPreTokenizer, bertProcessing, type Encoding } from 'tokenizers';

/** BERT's special tokens; a trained vocabulary starts with them, in this order ([PAD] = 0). */
export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

export interface WordPieceOptions {
  /** Sequence length after adding [CLS] and [SEP], truncating and padding with [PAD] (BERT: 128 for reports). */
  maxLength: number;
  /** Lower-case and strip accents (uncased BERT, ClinicalBERT uncased); default true. */
  lowercase?: boolean;
}

export interface TrainVocabularyOptions {
  /** Upper bound on the vocabulary size, special tokens included. */
  vocabSize: number;
  lowercase?: boolean;
}

/** A batch ready for a BERT graph: row-major [batch, maxLength] int64 ids and mask. */
export interface EncodedBatch {
  batch: number;
  length: number;
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
}

export class WordPieceError extends Error {
  override readonly name = 'WordPieceError';
}

/**
 * BERT WordPiece tokenisation (Devlin et al. 2019; google-research/bert `tokenization.py`) on
 * Hugging Face `tokenizers`: basic tokenisation (clean control characters, split CJK characters,
 * whitespace and punctuation, optional lower-casing and accent stripping), greedy longest-match
 * WordPiece with `##` continuations and [UNK] for words it cannot cover, then
 * `[CLS] ... [SEP]`, truncation and [PAD] padding to `maxLength`.
 */
export class WordPieceTokenizer {
  readonly vocab: readonly string[];
  readonly maxLength: number;
  readonly lowercase: boolean;
  private readonly tokenizer: Tokenizer;

  private constructor(vocab: string[], options: WordPieceOptions) {
    if (!Number.isInteger(options.maxLength) || options.maxLength < 2) {
      throw new WordPieceError(`maxLength must be an integer >= 2 (room for [CLS] and [SEP]), got ${options.maxLength}`);
    }
    const ids: Record<string, number> = {};
    vocab.forEach((token, id) => {
      if (token in ids) throw new WordPieceError(`vocabulary line ${id + 1} repeats a token of line ${ids[token] + 1}`);
      ids[token] = id;
    });
    for (const special of ['[PAD]', '[UNK]', '[CLS]', '[SEP]']) {
      if (!(special in ids)) throw new WordPieceError(`vocabulary has no ${special} token`);
    }
    this.vocab = vocab;
    this.maxLength = options.maxLength;
    this.lowercase = options.lowercase ?? true;
    const tokenizer = new Tokenizer(WordPiece.init(ids, { unkToken: '[UNK]', continuingSubwordPrefix: '##', maxInputCharsPerWord: 100 }));
    tokenizer.setNormalizer(bertNormalizer({ cleanText: true, handleChineseChars: true, lowercase: this.lowercase, stripAccents: this.lowercase }));
    tokenizer.setPreTokenizer(bertPreTokenizer());
    tokenizer.setPostProcessor(bertProcessing(['[SEP]', ids['[SEP]']], ['[CLS]', ids['[CLS]']]));
    tokenizer.setTruncation(this.maxLength);
    tokenizer.setPadding({ maxLength: this.maxLength, padId: ids['[PAD]'], padToken: '[PAD]' });
    this.tokenizer = tokenizer;
  }

  /** Loads a BERT `vocab.txt` (one token per line, the line number is the id). */
  static fromVocab(vocabTxt: string, options: WordPieceOptions): WordPieceTokenizer {
    const lines = vocabTxt.split(/\r?\n/);
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    if (lines.length === 0) throw new WordPieceError('vocabulary is empty');
    return new WordPieceTokenizer(lines, options);
  }

  /**
   * Learns a WordPiece vocabulary from report texts with the `tokenizers` WordPiece trainer (BPE
   * merges under the same normalisation and pre-tokenisation), capped at `vocabSize`: the trainer
   * numbers single characters first and merges in the order it learnt them, so its first ids are
   * the vocabulary a smaller target would have produced. The kept tokens are then sorted.
   */
  static train(texts: Iterable<string>, options: TrainVocabularyOptions & WordPieceOptions): WordPieceTokenizer {
    const lowercase = options.lowercase ?? true;
    const dir = mkdtempSync(join(tmpdir(), 'wordpiece-'));
    let learnt: string[];
    try {
      const corpus = join(dir, 'corpus.txt');
      // One report per line: newlines inside a report are whitespace to the pre-tokenizer anyway.
      writeFileSync(corpus, Array.from(texts, (t) => t.replace(/[\r\n]+/g, ' ')).join('\n'));
      const trainer = new Tokenizer(WordPiece.empty());
      trainer.setNormalizer(bertNormalizer({ cleanText: true, handleChineseChars: true, lowercase, stripAccents: lowercase }));
      trainer.setPreTokenizer(bertPreTokenizer());
      trainer.train([corpus]);
      learnt = Object.entries(trainer.getVocab())
        .sort((a, b) => a[1] - b[1])
        .map(([token]) => token);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const alphabet = learnt.filter((t) => [...t.replace(/^##/, '')].length === 1).length;
    const room = options.vocabSize - SPECIAL_TOKENS.length;
    if (room < alphabet) {
      throw new WordPieceError(`vocab_size ${options.vocabSize} is too small: the corpus has ${alphabet} single-character tokens plus ${SPECIAL_TOKENS.length} special tokens`);
    }
    // The trainer numbers tokens of equal standing in hash-map order, which changes from run to
    // run: sort what is kept (characters, continuation characters, then longer pieces) so the
    // same corpus always gives the same vocab.txt.
    const kept = learnt.filter((t) => !(SPECIAL_TOKENS as readonly string[]).includes(t)).slice(0, room);
    const rank = (t: string) => ([...t.replace(/^##/, '')].length === 1 ? (t.startsWith('##') ? 1 : 0) : 2);
    kept.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
    const vocab = [...SPECIAL_TOKENS, ...kept];
    return new WordPieceTokenizer(vocab, { maxLength: options.maxLength, lowercase });
  }

  /** The vocabulary as a BERT `vocab.txt`. */
  vocabTxt(): string {
    return `${this.vocab.join('\n')}\n`;
  }

  get padId(): number {
    return this.vocab.indexOf('[PAD]');
  }

  /** Word pieces of one text, [CLS] and [SEP] included, without padding (for inspection and tests). */
  async tokens(text: string): Promise<string[]> {
    const encoding = await this.tokenizer.encode(text);
    return encoding.getTokens().filter((_, i) => encoding.getAttentionMask()[i] === 1);
  }

  /** Ids and mask of one text, each `maxLength` long. */
  async encode(text: string): Promise<{ inputIds: number[]; attentionMask: number[] }> {
    const encoding = await this.tokenizer.encode(text);
    return { inputIds: encoding.getIds(), attentionMask: encoding.getAttentionMask() };
  }

  /** Ids and masks of a batch of texts as int64 arrays [batch, maxLength]. */
  async encodeBatch(texts: readonly string[]): Promise<EncodedBatch> {
    const encodings: Encoding[] = texts.length === 0 ? [] : await this.tokenizer.encodeBatch([...texts]);
    const length = this.maxLength;
    const inputIds = new BigInt64Array(texts.length * length);
    const attentionMask = new BigInt64Array(texts.length * length);
    encodings.forEach((encoding, row) => {
      const ids = encoding.getIds();
      const mask = encoding.getAttentionMask();
      for (let i = 0; i < length; i++) {
        inputIds[row * length + i] = BigInt(ids[i]);
        attentionMask[row * length + i] = BigInt(mask[i]);
      }
    });
    return { batch: texts.length, length, inputIds, attentionMask };
  }
}
