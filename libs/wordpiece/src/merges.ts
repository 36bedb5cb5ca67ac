/**
 * BPE merges over word pieces, as a WordPiece vocabulary is learnt: the most frequent adjacent
 * pair becomes one piece, again and again. Equally frequent pairs go first when their left piece
 * starts a word (so "effusion" grows from "ef", as BERT vocabularies read), then in code-unit order
 * of (left, right): the result depends on the corpus only.
 */

export interface CountedWord {
  /** The word's current pieces: its first character as is, the others with the `##` prefix. */
  pieces: string[];
  /** How often the word occurs in the corpus. */
  count: number;
}

interface Candidate {
  count: number;
  key: string;
}
const continues = (c: Candidate) => c.key.startsWith('##');
/** Whether a is merged before b. */
const before = (a: Candidate, b: Candidate) =>
  a.count > b.count || (a.count === b.count && (continues(a) !== continues(b) ? continues(b) : a.key < b.key));

/** A binary heap of candidates; entries whose count went stale are skipped when popped. */
class CandidateHeap {
  private readonly items: Candidate[] = [];

  push(item: Candidate): void {
    const items = this.items;
    items.push(item);
    for (let i = items.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  pop(): Candidate | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    items[0] = last;
    for (let i = 0; ;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let first = i;
      if (left < items.length && before(items[left]!, items[first]!)) first = left;
      if (right < items.length && before(items[right]!, items[first]!)) first = right;
      if (first === i) break;
      [items[i], items[first]] = [items[first]!, items[i]!];
      i = first;
    }
    return top;
  }
}

// Pieces never contain NUL (the normaliser's clean_text removes control characters).
const SEPARATOR = '\u0000';
const pairKey = (left: string, right: string) => `${left}${SEPARATOR}${right}`;

/**
 * Merges pairs in `words` (changed in place) and returns the new pieces in the order they were
 * learnt, at most `maxTokens` of them. A merge whose piece already exists is applied but adds no
 * token, as in the `tokenizers` BPE trainer.
 */
export function learnMerges(words: CountedWord[], maxTokens: number): string[] {
  const pairCounts = new Map<string, number>();
  const wordsWithPair = new Map<string, Set<number>>();
  const heap = new CandidateHeap();
  const known = new Set(words.flatMap((w) => w.pieces));
  const count = (word: CountedWord, index: number, sign: 1 | -1, touched: Set<string>) => {
    for (let i = 0; i + 1 < word.pieces.length; i++) {
      const key = pairKey(word.pieces[i]!, word.pieces[i + 1]!);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + sign * word.count);
      if (sign > 0) {
        let holders = wordsWithPair.get(key);
        if (!holders) wordsWithPair.set(key, (holders = new Set()));
        holders.add(index);
      }
      touched.add(key);
    }
  };
  const initial = new Set<string>();
  words.forEach((word, index) => count(word, index, 1, initial));
  for (const key of initial) heap.push({ key, count: pairCounts.get(key)! });

  const learnt: string[] = [];
  while (learnt.length < maxTokens) {
    const top = heap.pop();
    if (!top) break;
    if (top.count !== pairCounts.get(top.key) || top.count <= 0) continue;
    const [left, right] = top.key.split(SEPARATOR) as [string, string];
    const merged = left + right.slice(2); // right is a continuation piece: drop its "##"
    const touched = new Set<string>();
    for (const index of wordsWithPair.get(top.key) ?? []) {
      const word = words[index]!;
      count(word, index, -1, touched);
      const pieces: string[] = [];
      for (let i = 0; i < word.pieces.length; i++) {
        if (word.pieces[i] === left && word.pieces[i + 1] === right) {
          pieces.push(merged);
          i++;
        } else pieces.push(word.pieces[i]!);
      }
      word.pieces = pieces;
      count(word, index, 1, touched);
    }
    wordsWithPair.delete(top.key);
    for (const key of touched) {
      const n = pairCounts.get(key)!;
      if (n > 0) heap.push({ key, count: n });
      else pairCounts.delete(key);
    }
    if (!known.has(merged)) {
      known.add(merged);
      learnt.push(merged);
    }
  }
  return learnt;
}

/** Code-unit order: the same on every machine and locale. */
export const compareCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
