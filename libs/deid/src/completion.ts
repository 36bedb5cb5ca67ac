import { ENGLISH_WORDS, EPONYMS_NOT_NAMES, FIRST_NAMES, MEDICAL_TERMS, NOT_NAMES } from './dictionaries';
import { neverNamePart } from './rules';
import { tokenize, type Token } from './tagger/tokens';
import type { PhiSpan } from './types';

type CaseShape = 'caps' | 'lower' | 'capitalised' | 'other';

function caseShape(word: string): CaseShape {
  if (/^\p{Lu}{2,}$/u.test(word)) return 'caps';
  if (/^\p{Ll}+$/u.test(word)) return 'lower';
  return /^\p{Lu}\p{Ll}+$/u.test(word) ? 'capitalised' : 'other';
}

/** A word that may be part of a name: letters only, no title, credential, function word, month or relative (the rules' own lists). */
const isWord = (word: string) => word.length >= 2 && /^\p{L}+$/u.test(word) && !neverNamePart(word);

/**
 * A given name in front of a surname already found ("carol [wolfe]"): a census given name in the
 * surname's case; in capitals not one that is an English word too ("WILL [SMITH]" may be a verb).
 */
function givenNameBefore(word: string, next: string): boolean {
  const k = word.toLowerCase();
  const shape = caseShape(word);
  if (
    !isWord(word) ||
    !FIRST_NAMES.has(k) ||
    MEDICAL_TERMS.has(k) ||
    EPONYMS_NOT_NAMES.has(k) ||
    shape !== caseShape(next) ||
    shape === 'other'
  )
    return false;
  return shape !== 'caps' || !ENGLISH_WORDS.has(k);
}

/** A surname after a given name already found ("[leslie] kiezulas"): a word of no lexicon, in the given name's case. */
function surnameAfter(word: string, previous: string): boolean {
  const k = word.toLowerCase();
  if (!isWord(word) || !FIRST_NAMES.has(previous.toLowerCase())) return false;
  return (
    !ENGLISH_WORDS.has(k) &&
    !MEDICAL_TERMS.has(k) &&
    !NOT_NAMES.has(k) &&
    !EPONYMS_NOT_NAMES.has(k) &&
    caseShape(word) === caseShape(previous) &&
    caseShape(word) !== 'other'
  );
}

/**
 * Generic words of place names that belong to the name ("Milford Mill", "Union Memorial", "Holy
 * Cross"), from the usual US gazetteer generics; words for what a place is ("Hospital", "Campus",
 * "Medical") stay outside, as the de-identification gold leaves them.
 */
const PLACE_NAME_GENERICS = new Set(
  'mill mills memorial cross haven bay river heights park hill hills falls springs beach valley point harbor harbour ridge creek lake village grove glen woods station'.split(
    ' ',
  ),
);

/** Words that say an institution's type after its name ("Mercy Hospital"); the gold leaves them outside. */
const INSTITUTION_TYPE_WORDS = new Set('hospital hosp medical clinic center centre infirmary rehab nursing'.split(' '));

/**
 * Completes what the detectors found: names and places, whose other half carries no context of
 * its own and is as identifying. A place takes the gazetteer generic right after it, in its case
 * ("MILFORD [MILL]"), and any one word between it and an institution's type word, which can only
 * be part of the name ("[sacred] heart hosp" -> "[sacred heart] hosp").
 */
export function completeSpans(text: string, spans: readonly PhiSpan[]): PhiSpan[] {
  // Most reports have no name or place: they need no second tokenisation.
  if (!spans.some((s) => s.label === 'NAME' || s.label === 'LOCATION')) return [...spans];
  const tokens = tokenize(text);
  return completePlaces(text, completeNames(text, spans, tokens), tokens);
}

function completePlaces(text: string, spans: PhiSpan[], tokens: readonly Token[]): PhiSpan[] {
  const tokenEnding = new Map(tokens.map((t, i) => [t.end, i]));
  for (const span of spans) {
    const last = span.label === 'LOCATION' ? tokenEnding.get(span.end) : undefined;
    if (last === undefined || last + 1 >= tokens.length) continue;
    const next = tokens[last + 1]!;
    const word = text.slice(next.start, next.end);
    const previous = text.slice(tokens[last]!.start, tokens[last]!.end);
    const after = tokens[last + 2];
    const spaced = (a: { end: number }, b: { start: number }) => /^[ \t]{1,2}$/.test(text.slice(a.end, b.start));
    if (
      !spaced(span, next) ||
      caseShape(word) !== caseShape(previous) ||
      INSTITUTION_TYPE_WORDS.has(word.toLowerCase())
    )
      continue;
    const beforeType =
      after !== undefined &&
      spaced(next, after) &&
      INSTITUTION_TYPE_WORDS.has(text.slice(after.start, after.end).toLowerCase());
    if (PLACE_NAME_GENERICS.has(word.toLowerCase()) || (beforeType && /^\p{L}+$/u.test(word))) span.end = next.end;
  }
  return spans;
}

/**
 * Completes the names found: the given name or initial just before a found surname ("barbara j.
 * [parrilli]"), and the unknown surname just after a found given name ("[grace] dudak"), on the
 * same line with only a space between. Detectors often find one half of a name from its context
 * and miss the other, which carries no context of its own; the half they miss is as identifying.
 */
function completeNames(text: string, spans: readonly PhiSpan[], tokens: readonly Token[] = tokenize(text)): PhiSpan[] {
  const word = (t: Token) => text.slice(t.start, t.end);
  const out = spans.map((s) => ({ ...s }));
  const tokenAt = new Map<number, number>(); // token start -> index
  const tokenEnding = new Map<number, number>(); // token end -> index
  tokens.forEach((t, i) => {
    tokenAt.set(t.start, i);
    tokenEnding.set(t.end, i);
  });
  for (const span of out) {
    if (span.label !== 'NAME') continue;
    // Grow to the left: an initial ("j. ") or a given name (" ") before the span's first token.
    for (let first = tokenAt.get(span.start); first !== undefined && first > 0; first = tokenAt.get(span.start)) {
      const previous = tokens[first - 1]!;
      const gap = text.slice(previous.end, span.start);
      const initial = /^\p{L}$/u.test(word(previous)) && /^\.[ \t]?$/.test(gap);
      if (!initial && !(/^[ \t]{1,2}$/.test(gap) && givenNameBefore(word(previous), word(tokens[first]!)))) break;
      span.start = previous.start;
    }
    // Grow to the right: an unknown surname after a given name.
    const last = tokenEnding.get(span.end);
    if (last !== undefined && last + 1 < tokens.length) {
      const next = tokens[last + 1]!;
      if (/^[ \t]{1,2}$/.test(text.slice(span.end, next.start)) && surnameAfter(word(next), word(tokens[last]!)))
        span.end = next.end;
    }
  }
  return out;
}
