import { Tokenizer, WordPiece, bertNormalizer, bertPreTokenizer, bertProcessing, type Encoding } from 'tokenizers';
import { compareCodeUnits, learnMerges } from './merges';

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
      throw new WordPieceError(
        `maxLength must be an integer >= 2 (room for [CLS] and [SEP]), got ${options.maxLength}`,
      );
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
    const tokenizer = new Tokenizer(
      WordPiece.init(ids, { unkToken: '[UNK]', continuingSubwordPrefix: '##', maxInputCharsPerWord: 100 }),
    );
    tokenizer.setNormalizer(
      bertNormalizer({
        cleanText: true,
        handleChineseChars: true,
        lowercase: this.lowercase,
        stripAccents: this.lowercase,
      }),
    );
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
   * Learns a WordPiece vocabulary from report texts: the words of BERT's normaliser and
   * pre-tokeniser (from `tokenizers`, the same as encoding uses), then BPE merges with the `##`
   * continuation prefix, as the `tokenizers` WordPiece trainer learns them, until `vocabSize`.
   * That trainer breaks ties between equally frequent pairs in hash-map order, so one corpus gave
   * different vocabularies run to run; here ties go to the lexicographically first pair, and the
   * same corpus always gives the same vocab.txt.
   */
  static train(texts: Iterable<string>, options: TrainVocabularyOptions & WordPieceOptions): WordPieceTokenizer {
    const lowercase = options.lowercase ?? true;
    const normalizer = bertNormalizer({
      cleanText: true,
      handleChineseChars: true,
      lowercase,
      stripAccents: lowercase,
    });
    const preTokenizer = bertPreTokenizer();
    const wordCounts = new Map<string, number>();
    for (const text of texts) {
      for (const [word] of preTokenizer.preTokenizeString(normalizer.normalizeString(text)))
        wordCounts.set(word, (wordCounts.get(word) ?? 0) + 1);
    }
    const words = [...wordCounts].map(([word, count]) => ({
      pieces: [...word].map((ch, i) => (i === 0 ? ch : `##${ch}`)),
      count,
    }));
    const alphabet = [...new Set(words.flatMap((w) => w.pieces))].sort(compareCodeUnits);
    const room = options.vocabSize - SPECIAL_TOKENS.length;
    if (room < alphabet.length) {
      throw new WordPieceError(
        `vocab_size ${options.vocabSize} is too small: the corpus has ${alphabet.length} single-character tokens plus ${SPECIAL_TOKENS.length} special tokens`,
      );
    }
    const merged = learnMerges(words, room - alphabet.length);
    return new WordPieceTokenizer([...SPECIAL_TOKENS, ...alphabet, ...merged], {
      maxLength: options.maxLength,
      lowercase,
    });
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
