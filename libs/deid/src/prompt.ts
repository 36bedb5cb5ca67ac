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
export function buildPrompt(sections: ReportSection[], counter: ClipTokenCounter, maxTokens = MAX_PROMPT_TOKENS): GeneratorPrompt {
  const source =
    sections.find((s) => s.name === 'IMPRESSION' && s.text.trim()) ??
    sections.find((s) => s.name === 'FINDINGS' && s.text.trim()) ??
    sections.find((s) => s.name === 'OTHER' && s.text.trim());
  if (!source) return { text: '', sourceSection: '', tokenCount: counter.countTokens(''), truncated: false };
  const text = source.text.replace(/\s+/g, ' ').trim();
  // CLIP's BPE never joins across whitespace, so a text's tokens are the sum of its words'
  // (counted once each and cached, and only until the limit is passed: the BPE is slow).
  const sentences = text.split(/(?<=[.!?;])\s+/);
  let kept = '';
  let keptCount = 2;
  for (const sentence of sentences) {
    // Every word is at least one token: a sentence with too many words is not counted at all.
    if (keptCount + sentence.split(' ').length > maxTokens) break;
    const count = keptCount + sentenceTokens(counter, sentence);
    if (count > maxTokens) break;
    [kept, keptCount] = [kept ? `${kept} ${sentence}` : sentence, count];
  }
  if (kept.length === text.length) return { text, sourceSection: source.name, tokenCount: keptCount, truncated: false };
  if (kept) return { text: kept, sourceSection: source.name, tokenCount: keptCount, truncated: true };

  // The first sentence alone is too long: the longest run of whole words that fits.
  const first = sentences[0]!.split(' ');
  let [low, high] = [0, Math.min(first.length, maxTokens)];
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (counter.countTokens(first.slice(0, mid).join(' ')) <= maxTokens) low = mid;
    else high = mid - 1;
  }
  const cut = first.slice(0, low).join(' ');
  return { text: cut, sourceSection: source.name, tokenCount: counter.countTokens(cut), truncated: true };
}

/** Counts of recent words per counter: report vocabulary is small ("pneumothorax", "effusion"). */
const wordCache = new WeakMap<ClipTokenCounter, Map<string, number>>();
const WORD_CACHE_SIZE = 100_000;

/** Tokens of one sentence without the start and end tokens: the sum over its words. */
function sentenceTokens(counter: ClipTokenCounter, sentence: string): number {
  let cache = wordCache.get(counter);
  if (!cache) wordCache.set(counter, (cache = new Map()));
  let total = 0;
  for (const word of sentence.split(' ')) {
    let count = cache.get(word);
    if (count === undefined) {
      count = counter.countTokens(word) - 2;
      if (cache.size >= WORD_CACHE_SIZE) cache.clear();
      cache.set(word, count);
    }
    total += count;
  }
  return total;
}
