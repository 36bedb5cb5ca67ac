import { ENGLISH_WORDS, EPONYMS_NOT_NAMES, FIRST_NAMES, LAST_NAMES, MEDICAL_TERMS, NOT_NAMES } from './dictionaries';
import { RULES, type Rule } from './rules';
import type { PhiDetector, PhiLabel, PhiSpan } from './types';

/** Finds identifiers with the rule table, then names seen once wherever else they occur in the text. */
export class RuleDetector implements PhiDetector {
  constructor(private readonly rules: readonly Rule[] = RULES) {}

  async detect(text: string): Promise<PhiSpan[]> {
    return this.find(text);
  }

  /** The rules need no model: callers that want no promise use this. */
  find(text: string): PhiSpan[] {
    const found: PhiSpan[] = [];
    const present = new Map<string | RegExp, boolean>();
    const has = (required: string | RegExp) => {
      let yes = present.get(required);
      if (yes === undefined)
        present.set(required, (yes = typeof required === 'string' ? text.includes(required) : required.test(text)));
      return yes;
    };
    for (const rule of this.rules) {
      if ((rule.requires && !has(rule.requires)) || (rule.unless && has(rule.unless))) continue;
      rule.pattern.lastIndex = 0;
      for (let match = rule.pattern.exec(text); match; match = rule.pattern.exec(text)) {
        if (match[0].length === 0) {
          rule.pattern.lastIndex++;
          continue;
        }
        const [start, matchEnd] =
          rule.group !== undefined
            ? (groupIndices(match, rule.group) ?? [-1, -1])
            : [match.index, match.index + match[0].length];
        if (start < 0) continue;
        const value = text.slice(start, matchEnd);
        const verdict = rule.accept ? rule.accept(value, match, text) : true;
        if (!verdict) {
          if (rule.retryInside) rule.pattern.lastIndex = nextWord(text, match.index);
          continue;
        }
        const end = rule.kindAtEnd ? start + value.replace(rule.kindAtEnd, '').length : matchEnd;
        found.push(trim({ start, end, label: verdict === true ? rule.label : verdict, rule: rule.name }, text));
      }
    }
    const merged = mergeSpans(found);
    return mergeSpans([...merged, ...repeatedNames(text, merged)]);
  }
}

/** Where the word after the one at `from` starts (or the end of the text). */
function nextWord(text: string, from: number): number {
  const rest = /\W+\w/g;
  rest.lastIndex = from + 1;
  const next = rest.exec(text);
  return next ? next.index + next[0].length - 1 : text.length;
}

/** Runs several detectors (rules, a token classifier) and merges what they find. */
export function combineDetectors(...detectors: PhiDetector[]): PhiDetector {
  return { detect: async (text) => mergeSpans((await Promise.all(detectors.map((d) => d.detect(text)))).flat()) };
}

function groupIndices(match: RegExpExecArray, group: number | string): [number, number] | undefined {
  const indices = typeof group === 'number' ? match.indices?.[group] : match.indices?.groups?.[group];
  return indices ? [indices[0], indices[1]] : undefined;
}

/** Drops surrounding spaces and punctuation, and a possessive 's after a name. */
function trim(span: PhiSpan, text: string): PhiSpan {
  let { start, end } = span;
  while (start < end && /[\s,;:]/.test(text[start]!)) start++;
  while (end > start && /[\s,;:]/.test(text[end - 1]!)) end--;
  // Parentheses belong to the span only in pairs: "(617) 555-1234" keeps its "(".
  const inner = text.slice(start, end);
  if (inner.startsWith('(') && !inner.includes(')')) start++;
  if (inner.endsWith(')') && !inner.includes('(')) end--;
  if (span.label === 'NAME' && /['’]s$/.test(text.slice(start, end))) end -= 2;
  return { ...span, start, end };
}

/**
 * Overlapping spans become one covering their union (redacting too much of an identifier beats
 * leaking part of it); it keeps the label and rule of its longest part, the earlier rule on a tie.
 */
export function mergeSpans(spans: PhiSpan[]): PhiSpan[] {
  const order = spans
    .filter((s) => s.end > s.start)
    .map((s, i) => ({ s, i }))
    .sort((a, b) => a.s.start - b.s.start || b.s.end - a.s.end || a.i - b.i);
  const out: PhiSpan[] = [];
  let best: PhiSpan | undefined;
  for (const { s } of order) {
    const last = out[out.length - 1];
    if (last && s.start < last.end) {
      if (s.end - s.start > best!.end - best!.start) best = s;
      last.end = Math.max(last.end, s.end);
      last.label = best!.label;
      last.rule = best!.rule;
    } else {
      best = s;
      out.push({ ...s });
    }
  }
  return out;
}

/**
 * Every other occurrence of a surname or given name already found ("Dr. Brown ... Brown agreed",
 * "Dr. Toolis ... DR TOOLIS"), as written, in capitals or capitalised. Only names that are no
 * English or medical word are repeated: "Will" found after a title must not take every "will".
 */
function repeatedNames(text: string, spans: PhiSpan[]): PhiSpan[] {
  const names = new Set<string>();
  for (const span of spans) {
    if (span.label !== 'NAME') continue;
    for (const token of text.slice(span.start, span.end).split(/[\s,.]+/)) {
      const key = token.toLowerCase().replace(/['’]s$/, '');
      if (token.length < 3 || NOT_NAMES.has(key) || EPONYMS_NOT_NAMES.has(key)) continue;
      if (ENGLISH_WORDS.has(key) || (MEDICAL_TERMS.has(key) && !FIRST_NAMES.has(key) && !LAST_NAMES.has(key))) continue;
      const capitalised = key.replace(/(^|[-'’])([a-z])/g, (_m, sep: string, c: string) => sep + c.toUpperCase());
      for (const form of new Set([token, key.toUpperCase(), capitalised])) names.add(form);
    }
  }
  if (names.size === 0) return [];
  const pattern = new RegExp(`(?<![\\w'’-])(?:${[...names].map(escape).join('|')})(?![\\w'’-])`, 'g');
  const out: PhiSpan[] = [];
  for (const match of text.matchAll(pattern))
    out.push({
      start: match.index,
      end: match.index + match[0].length,
      label: 'NAME' as PhiLabel,
      rule: 'name_repeated',
    });
  return out;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
