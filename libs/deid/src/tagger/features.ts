import {
  ENGLISH_WORDS,
  EPONYMS,
  FIRST_NAMES,
  LAST_NAMES,
  MEDICAL_TERMS,
  NOT_NAMES,
  US_STATES,
  WORLD_CITIES,
  WORLD_NAMES,
} from '../dictionaries';
import { RuleDetector } from '../detector';
import type { PhiSpan } from '../types';
import type { Token } from './tokens';

/**
 * The tagger's input: each token is FEATURE_SLOTS hashed feature ids, whose embeddings the model
 * sums. Training and inference both call `featurize`, so they cannot drift apart. Id 0 is padding.
 */
export const FEATURE_SLOTS = 12;
export const FEATURE_VERSION = 2;

/** A text ready to featurize: its tokens and what the rules say about each (computed once per text). */
export interface FeaturedText {
  text: string;
  tokens: readonly Token[];
  /** Per token, two ids: the covering rule span's label and position, and the rule's name (or "none"). */
  ruleIds: Int32Array;
}

const STATE_WORDS = new Set(
  Object.entries(US_STATES).flatMap(([code, name]) => [code.toLowerCase(), name.toLowerCase()]),
);

/** One bit per lexicon: which lists a word is in is most of what says "name" or "place" without context. */
const LEXICONS: readonly ReadonlySet<string>[] = [
  FIRST_NAMES,
  LAST_NAMES,
  WORLD_NAMES,
  ENGLISH_WORDS,
  MEDICAL_TERMS,
  WORLD_CITIES,
  STATE_WORDS,
  EPONYMS,
  NOT_NAMES,
];

/** FNV-1a (32 bit), salted by the slot so that two slots' values rarely share a row. */
function hash(slot: number, s: string): number {
  let h = (2166136261 ^ (slot * 16777619)) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h;
}

/** Xxxx, XXXX, xxxx, dd/dd: character classes with runs longer than four cut to four. */
export function wordShape(word: string): string {
  let shape = '';
  let run = 0;
  for (const ch of word) {
    const c = /\p{Lu}/u.test(ch) ? 'X' : /\p{Ll}/u.test(ch) ? 'x' : /\p{N}/u.test(ch) ? 'd' : ch;
    run = shape.endsWith(c) ? run + 1 : 1;
    if (run <= 4) shape += c;
  }
  return shape;
}

function caseClass(word: string): string {
  if (/^\p{Lu}+$/u.test(word)) return word.length === 1 ? 'I' : 'U';
  if (/^\p{Lu}\p{Ll}+$/u.test(word)) return 'T';
  if (/^\p{Ll}+$/u.test(word)) return 'L';
  return /^\p{N}+$/u.test(word) ? 'D' : 'M';
}

function numberClass(word: string): string {
  if (!/^\p{N}+$/u.test(word)) return `len${Math.min(word.length, 7)}`;
  const n = Number(word);
  const range =
    n === 0
      ? 'zero'
      : n <= 12
        ? 'month'
        : n <= 31
          ? 'day'
          : n <= 99
            ? 'small'
            : n >= 1900 && n <= 2099 && word.length === 4
              ? 'year'
              : 'big';
  return `${range}:${Math.min(word.length, 8)}`;
}

/** What separates two tokens, with spaces and line breaks reduced to one kind each. */
function separator(text: string, from: number, to: number): string {
  const gap = text.slice(from, to);
  // Most gaps are one character (a space, a newline, a comma): no regular expression for those.
  if (gap.length <= 1) return gap === '\n' || !/\s/.test(gap) ? gap : ' ';
  const squeezed = gap.replace(/\s+/g, (ws) => (ws.includes('\n') ? '\n' : ' '));
  return squeezed.length > 4 ? squeezed.slice(0, 2) + squeezed.slice(-2) : squeezed;
}

export class FeatureExtractor {
  /** Per distinct word: the ids that depend on the word alone (most of the work, reused). */
  private readonly cache = new Map<string, Int32Array>();
  private readonly rules = new RuleDetector();

  /** Slot 9's four values: inside or at a line's start, after a colon or not. */
  private readonly lineIds: readonly number[];

  constructor(readonly buckets: number) {
    this.lineIds = ['inside:', 'inside:colon', 'line-start:', 'line-start:colon'].map((v) => this.id(9, v));
  }

  private id(slot: number, value: string): number {
    return 1 + (hash(slot, value) % (this.buckets - 1));
  }

  /** The id of slot's "unknown value" (training drops words to it so that context must carry them). */
  unknown(slot: number): number {
    return this.id(slot, '\u0000unknown');
  }

  private wordIds(word: string): Int32Array {
    let ids = this.cache.get(word);
    if (ids) return ids;
    const lower = word.toLowerCase();
    let lexicon = 0;
    LEXICONS.forEach((set, bit) => {
      if (set.has(lower)) lexicon |= 1 << bit;
    });
    const cls = caseClass(word);
    ids = Int32Array.of(
      this.id(0, lower.slice(0, 24)),
      this.id(1, wordShape(word)),
      this.id(2, lower.slice(0, 3)),
      this.id(3, lower.slice(-3)),
      this.id(4, `${lexicon}`),
      this.id(5, `${lexicon}:${cls}`),
      this.id(6, numberClass(word)),
    );
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  /**
   * Stacks the rules into the tagger: each token learns which rule span (label, first or later
   * token, rule name) covers it, so the model learns when a rule's name or place is right. The
   * rules run on the text the tagger sees (in training: after the surrogates went in).
   */
  prepare(text: string, tokens: readonly Token[], ruleSpans: readonly PhiSpan[] = this.rules.find(text)): FeaturedText {
    // ruleSpans: `new RuleDetector().find(text)`, when the caller has them already.
    const ruleIds = new Int32Array(tokens.length * 2);
    const spans = [...ruleSpans].sort((a, b) => a.start - b.start);
    let s = 0;
    tokens.forEach((token, t) => {
      while (s < spans.length && spans[s]!.end <= token.start) s++;
      let label = 'none';
      let rule = 'none';
      for (let k = s; k < spans.length && spans[k]!.start < token.end; k++) {
        if (spans[k]!.end > token.start) {
          const first = t === 0 || tokens[t - 1]!.end <= spans[k]!.start;
          label = `${spans[k]!.label}:${first ? 'B' : 'I'}`;
          rule = spans[k]!.rule;
          break;
        }
      }
      ruleIds[2 * t] = this.id(10, label);
      ruleIds[2 * t + 1] = this.id(11, rule);
    });
    return { text, tokens, ruleIds };
  }

  /** Feature ids of tokens[from, to), FEATURE_SLOTS per token, written into out at offset. */
  featurize(doc: FeaturedText, from: number, to: number, out: Int32Array, offset = 0): void {
    const { text, tokens } = doc;
    // The gap after one token is the gap before the next: each is read and hashed once.
    let before = from > 0 ? separator(text, tokens[from - 1]!.end, tokens[from]!.start) : '';
    for (let t = from; t < to; t++) {
      const { start, end } = tokens[t]!;
      const o = offset + (t - from) * FEATURE_SLOTS;
      if (t === 0) before = separator(text, Math.max(0, start - 4), start);
      const after = separator(text, end, t + 1 < tokens.length ? tokens[t + 1]!.start : Math.min(text.length, end + 4));
      out.set(this.wordIds(text.slice(start, end)), o);
      out[o + 7] = this.id(7, before);
      out[o + 8] = this.id(8, after);
      // The line's first token: headings ("NEURO:") and list items start lines; names rarely do.
      out[o + 9] =
        this.lineIds[
          (t === 0 || before.includes('\n') ? 2 : 0) + (before.endsWith(':') || before.endsWith(': ') ? 1 : 0)
        ]!;
      out[o + 10] = doc.ruleIds[2 * t]!;
      out[o + 11] = doc.ruleIds[2 * t + 1]!;
      before = after;
    }
  }
}
