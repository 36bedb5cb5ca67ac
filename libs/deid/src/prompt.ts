import type { ReportSection, SectionName } from './sections';

/** Counts CLIP tokens of a text, start and end tokens included (e.g. @medsyn/clip-tokenizer). */
export interface ClipTokenCounter {
  countTokens(text: string): number;
}

export interface GeneratorPrompt {
  text: string;
  sourceSection: SectionName | '';
  tokenCount: number;
  truncated: boolean;
}

/** RoentGen / Stable Diffusion's text encoder reads at most 77 tokens. */
export const MAX_PROMPT_TOKENS = 77;

/**
 * The generator prompt of a de-identified report: IMPRESSION first, FINDINGS as fallback (then
 * any text), whitespace normalised, cut to `maxTokens` CLIP tokens at a sentence boundary where
 * a whole sentence fits, else at a word boundary.
 */
export function buildPrompt(
  sections: ReportSection[],
  counter: ClipTokenCounter,
  maxTokens = MAX_PROMPT_TOKENS,
): GeneratorPrompt {
  const source =
    sections.find((s) => s.name === 'IMPRESSION' && s.text.trim()) ??
    sections.find((s) => s.name === 'FINDINGS' && s.text.trim()) ??
    sections.find((s) => s.name === 'OTHER' && s.text.trim());
  if (!source) return { text: '', sourceSection: '', tokenCount: counter.countTokens(''), truncated: false };
  const text = source.text.replace(/\s+/g, ' ').trim();
  // CLIP's BPE never joins across whitespace, so a text's tokens are the sum of its words'
  // (counted once each and cached: the BPE is slow). One pass over the words: a sentence ends at
  // a word ending in . ! ? or ;, and the pass stops as soon as the current sentence cannot fit,
  // either by its tokens or by its words (every word is at least one token).
  const counts = wordCounts(counter);
  let keptEnd = 0; // end of the last whole sentence that fits
  let keptCount = 2; // its tokens, start and end tokens included
  let sentenceTokens = 0;
  let sentenceWords = 0;
  for (let start = 0; start < text.length;) {
    let end = text.indexOf(' ', start);
    if (end < 0) end = text.length;
    sentenceTokens += wordTokens(counter, counts, text.slice(start, end));
    sentenceWords++;
    if (keptCount + sentenceWords > maxTokens || keptCount + sentenceTokens > maxTokens) break;
    if (end === text.length || SENTENCE_END.has(text.charCodeAt(end - 1))) {
      [keptEnd, keptCount] = [end, keptCount + sentenceTokens];
      [sentenceTokens, sentenceWords] = [0, 0];
    }
    start = end + 1;
  }
  if (keptEnd === text.length) return { text, sourceSection: source.name, tokenCount: keptCount, truncated: false };
  if (keptEnd > 0)
    return { text: text.slice(0, keptEnd), sourceSection: source.name, tokenCount: keptCount, truncated: true };

  // The first sentence alone is too long: the longest run of whole words that fits.
  let [cutEnd, cutCount] = [0, 2];
  for (let start = 0; start < text.length;) {
    let end = text.indexOf(' ', start);
    if (end < 0) end = text.length;
    const count = cutCount + wordTokens(counter, counts, text.slice(start, end));
    if (count > maxTokens) break;
    [cutEnd, cutCount] = [end, count];
    if (SENTENCE_END.has(text.charCodeAt(end - 1))) break; // within the first sentence only
    start = end + 1;
  }
  return { text: text.slice(0, cutEnd), sourceSection: source.name, tokenCount: cutCount, truncated: true };
}

/** Characters that end a sentence (char codes of . ! ? ;). */
const SENTENCE_END = new Set(['.', '!', '?', ';'].map((c) => c.charCodeAt(0)));

/** Counts of recent words per counter: report vocabulary is small ("pneumothorax", "effusion"). */
const wordCache = new WeakMap<ClipTokenCounter, Map<string, number>>();
const WORD_CACHE_SIZE = 100_000;

function wordCounts(counter: ClipTokenCounter): Map<string, number> {
  let cache = wordCache.get(counter);
  if (!cache) wordCache.set(counter, (cache = new Map()));
  return cache;
}

/**
 * An ASCII word ("Effusion.", "(left)", "x-XXXX.", "C5-6,"). CLIP lower-cases it and splits it into
 * letter runs, single digits and punctuation runs, so its tokens are the sum of theirs, and
 * "effusion", "Effusion," and "effusion." share one count. Apostrophes (contractions), "|"
 * (special tokens) and non-ASCII text take the general path.
 */
const PLAIN_WORD = /^[A-Za-z0-9!-&(-\/:-@\[-`{}~]+$/;
const PLAIN_RUN = /[A-Za-z]+|[0-9]|[!-&(-\/:-@\[-`{}~]+/g;

/** Tokens of one word without the start and end tokens. */
function wordTokens(counter: ClipTokenCounter, cache: Map<string, number>, word: string): number {
  let count = cache.get(word);
  if (count !== undefined) return count;
  if (PLAIN_WORD.test(word)) {
    count = 0;
    for (const [run] of word.toLowerCase().matchAll(PLAIN_RUN)) count += runTokens(counter, cache, run);
  } else count = counter.countTokens(word) - 2;
  if (cache.size >= WORD_CACHE_SIZE) cache.clear();
  cache.set(word, count);
  return count;
}

/** Tokens of one letter or punctuation run, counted by the BPE once. */
function runTokens(counter: ClipTokenCounter, cache: Map<string, number>, run: string): number {
  let count = cache.get(run);
  if (count === undefined) {
    count = counter.countTokens(run) - 2;
    if (cache.size >= WORD_CACHE_SIZE) cache.clear();
    cache.set(run, count);
  }
  return count;
}
