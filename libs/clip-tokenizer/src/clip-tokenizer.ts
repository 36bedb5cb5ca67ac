import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Tokenizer as HfTokenizer } from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };
import {
  ClipVocabulary,
  END_OF_TEXT,
  START_OF_TEXT,
  clipMergeLines,
  clipVocabularyFromMerges,
} from './clip-vocabulary';

// The package ships a CommonJS build for Node (its `exports` "node.require" condition); its
// type declarations are ESM-only, hence the type-only import above.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- see above
const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: typeof HfTokenizer };

/** CLIP's text context: 75 prompt tokens between start and end. */
export const CLIP_MAX_LENGTH = 77;

export interface ClipEncoding {
  /** start, prompt tokens, end, then padding: always `maxLength` ids */
  ids: number[];
  /** 1 for start, prompt and end tokens, 0 for padding */
  attentionMask: number[];
  /** tokens the whole prompt needs, start and end included, before truncation */
  tokenCount: number;
  /** true when the prompt needed more than `maxLength` tokens and was cut (end token kept) */
  truncated: boolean;
}

/** The tokenizer_config.json / special_tokens_map.json settings this tokenizer uses. */
export interface ClipTokenizerConfig {
  bos_token?: string | { content: string };
  eos_token?: string | { content: string };
  /** SD 1.x pads with `<|endoftext|>`, SD 2.x with `!` */
  pad_token?: string | { content: string };
  model_max_length?: number;
}

export class ClipTokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClipTokenizerError';
  }
}

/**
 * The Hugging Face `tokenizer.json` that transformers' `CLIPConverter` writes for a CLIP
 * vocabulary: NFC, whitespace collapsed, lower-cased; CLIP's pre-tokenisation regex
 * (contractions, letter runs, single digits, punctuation runs); byte-level symbols; BPE with the
 * `</w>` end-of-word suffix.
 */
export function clipTokenizerJson(vocabulary: ClipVocabulary): object {
  const special = (content: string) => ({
    id: vocabulary.vocab[content],
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(START_OF_TEXT), special(END_OF_TEXT)],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'NFC' },
        { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
        { type: 'Lowercase' },
      ],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+" },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [END_OF_TEXT, vocabulary.vocab[END_OF_TEXT]],
      cls: [START_OF_TEXT, vocabulary.vocab[START_OF_TEXT]],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: END_OF_TEXT,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab: vocabulary.vocab,
      merges: vocabulary.merges,
    },
  };
}

function tokenContent(token: string | { content: string } | undefined): string | undefined {
  return typeof token === 'string' ? token : token?.content;
}

/**
 * CLIP BPE tokenizer as Stable Diffusion models use it: `padding="max_length"`,
 * `truncation=True`, `max_length=77`. Tokenisation itself is `@huggingface/tokenizers`.
 */
export class ClipTokenizer {
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly vocabSize: number;

  constructor(
    private readonly tokenizer: HfTokenizer,
    config: ClipTokenizerConfig = {},
  ) {
    const idOf = (token: string, setting: string): number => {
      const id = tokenizer.token_to_id(token);
      if (id === undefined)
        throw new ClipTokenizerError(`tokenizer: ${setting} ${JSON.stringify(token)} is not in the vocabulary`);
      return id;
    };
    this.bosId = idOf(tokenContent(config.bos_token) ?? START_OF_TEXT, 'bos_token');
    this.eosId = idOf(tokenContent(config.eos_token) ?? END_OF_TEXT, 'eos_token');
    this.padId = idOf(tokenContent(config.pad_token) ?? END_OF_TEXT, 'pad_token');
    // transformers writes a huge sentinel when a config has no limit; CLIP's context is 77.
    const configured = config.model_max_length;
    this.maxLength = configured && configured >= 2 && configured <= 4096 ? configured : CLIP_MAX_LENGTH;
    this.vocabSize = tokenizer.get_vocab(true).size;
  }

  /** From a `vocab.json` + merges list (the `merges.txt` lines after its `#version` header). */
  static fromVocabulary(vocabulary: ClipVocabulary, config: ClipTokenizerConfig = {}): ClipTokenizer {
    return new ClipTokenizer(new Tokenizer(clipTokenizerJson(vocabulary), config), config);
  }

  /**
   * From an export's `tokenizer/` directory: `tokenizer.json` when present, else `vocab.json` +
   * `merges.txt`; `tokenizer_config.json` and `special_tokens_map.json` when present.
   */
  static fromDirectory(dir: string): ClipTokenizer {
    const readJson = (name: string): unknown => {
      const file = path.join(dir, name);
      try {
        return JSON.parse(fs.readFileSync(file, 'utf8'));
      } catch (err) {
        throw new ClipTokenizerError(`tokenizer: cannot read ${name} in ${dir}: ${(err as Error).message}`);
      }
    };
    const has = (name: string) => fs.existsSync(path.join(dir, name));
    const config: ClipTokenizerConfig = {
      ...(has('special_tokens_map.json') ? (readJson('special_tokens_map.json') as ClipTokenizerConfig) : {}),
      ...(has('tokenizer_config.json') ? (readJson('tokenizer_config.json') as ClipTokenizerConfig) : {}),
    };
    if (has('tokenizer.json')) {
      return new ClipTokenizer(new Tokenizer(readJson('tokenizer.json') as object, config), config);
    }
    if (!has('vocab.json') || !has('merges.txt')) {
      throw new ClipTokenizerError(`tokenizer: ${dir} has neither tokenizer.json nor vocab.json + merges.txt`);
    }
    const vocab = readJson('vocab.json') as Record<string, number>;
    const merges = fs
      .readFileSync(path.join(dir, 'merges.txt'), 'utf8')
      .split('\n')
      .filter((line) => line.length > 0 && !line.startsWith('#version'));
    return ClipTokenizer.fromVocabulary({ vocab, merges }, config);
  }

  /** The prompt's token ids without start/end tokens, untruncated. */
  tokenize(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Start token, up to `maxLength - 2` prompt tokens, end token, padding to `maxLength`. */
  encode(text: string): ClipEncoding {
    const promptIds = this.tokenize(text);
    const tokenCount = promptIds.length + 2;
    const truncated = tokenCount > this.maxLength;
    const kept = [this.bosId, ...promptIds.slice(0, this.maxLength - 2), this.eosId];
    const ids = kept.concat(new Array<number>(this.maxLength - kept.length).fill(this.padId));
    const attentionMask = ids.map((_, i) => (i < kept.length ? 1 : 0));
    return { ids, attentionMask, tokenCount, truncated };
  }

  /** Tokens the prompt needs, start and end included (compare with `maxLength`). */
  countTokens(text: string): number {
    return this.tokenize(text).length + 2;
  }

  decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: true }).trim();
  }
}

let defaultTokenizer: ClipTokenizer | undefined;

/**
 * The tokenizer of SD 1.x / 2.x and RoentGen (OpenAI CLIP's vocabulary, 49,408 tokens), for
 * counting prompt tokens without a model. Built once (about half a second).
 */
export function defaultClipTokenizer(): ClipTokenizer {
  defaultTokenizer ??= ClipTokenizer.fromVocabulary(clipVocabularyFromMerges(clipMergeLines()));
  return defaultTokenizer;
}

/** Tokens `text` needs under CLIP's vocabulary, start and end included. */
export function countTokens(text: string): number {
  return defaultClipTokenizer().countTokens(text);
}

/** Encodes `text` with CLIP's vocabulary (see `ClipTokenizer.encode`). */
export function encode(text: string): ClipEncoding {
  return defaultClipTokenizer().encode(text);
}

/**
 * Writes a `tokenizer/` directory the way transformers' `CLIPTokenizer.save_pretrained` lays it
 * out (vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json). `mergeCount`
 * below CLIP's 48,894 gives a small real-CLIP vocabulary for test models.
 */
export function writeClipTokenizerFiles(
  dir: string,
  options: { mergeCount?: number; padToken?: string; withTokenizerJson?: boolean } = {},
): ClipVocabulary {
  const vocabulary = clipVocabularyFromMerges(clipMergeLines(), options.mergeCount);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocabulary.vocab));
  fs.writeFileSync(path.join(dir, 'merges.txt'), ['#version: 0.2', ...vocabulary.merges].join('\n') + '\n');
  const special = {
    bos_token: START_OF_TEXT,
    eos_token: END_OF_TEXT,
    unk_token: END_OF_TEXT,
    pad_token: options.padToken ?? END_OF_TEXT,
  };
  fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify(special, null, 2));
  fs.writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify(
      { ...special, model_max_length: CLIP_MAX_LENGTH, do_lower_case: true, tokenizer_class: 'CLIPTokenizer' },
      null,
      2,
    ),
  );
  if (options.withTokenizerJson)
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(clipTokenizerJson(vocabulary)));
  return vocabulary;
}
