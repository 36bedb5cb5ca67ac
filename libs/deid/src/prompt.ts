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
  // Every word is at least one token: a long section is not counted whole (CLIP's BPE is slow on kilobytes).
  const words = (t: string) => t.split(' ').length;
  const whole = words(text) + 2 <= maxTokens ? counter.countTokens(text) : Infinity;
  if (whole <= maxTokens) return { text, sourceSection: source.name, tokenCount: whole, truncated: false };

  const sentences = text.split(/(?<=[.!?;])\s+/);
  let kept = '';
  let keptCount = 0;
  for (const sentence of sentences) {
    const candidate = kept ? `${kept} ${sentence}` : sentence;
    if (words(candidate) + 2 > maxTokens) break;
    const count = counter.countTokens(candidate);
    if (count > maxTokens) break;
    [kept, keptCount] = [candidate, count];
  }
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
