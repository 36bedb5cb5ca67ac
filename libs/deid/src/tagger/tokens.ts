/**
 * Tokens are the scorer's: runs of letters and digits (`[\p{L}\p{N}]+`), so a token the tagger
 * labels is exactly a token the evaluation counts. Offsets are UTF-16 code units.
 */
export interface Token {
  start: number;
  /** Exclusive. */
  end: number;
}

const TOKEN = /[\p{L}\p{N}]+/gu;

export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  for (const match of text.matchAll(TOKEN)) tokens.push({ start: match.index, end: match.index + match[0].length });
  return tokens;
}
