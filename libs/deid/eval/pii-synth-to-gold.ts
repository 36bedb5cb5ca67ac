/**
 * Converts Presidio's synthetic PII sentences (pii-synth, MIT) to the gold format, keeping only
 * what HIPAA Safe Harbor asks to remove:
 *   PERSON -> NAME; DATE_TIME -> DATE without its time of day, except a year or a weekday alone;
 *   AGE -> AGE when over 89 (younger ages are not PHI);
 *   PHONE_NUMBER, EMAIL_ADDRESS, DOMAIN_NAME, IP_ADDRESS -> CONTACT;
 *   US_SSN, CREDIT_CARD, IBAN_CODE, US_DRIVER_LICENSE -> ID;
 *   STREET_ADDRESS, ZIP_CODE, ORGANIZATION, GPE -> LOCATION, less the countries and states in them
 *   (Safe Harbor removes only geographic units smaller than a state);
 *   TITLE and NRP (nationality, religion, politics) are not identifiers and are dropped.
 *
 * With --split-seed N it also writes OUT.tune.jsonl and OUT.held-out.jsonl: each sentence goes to
 * one half by a hash of (seed, id), so the halves are fixed for a seed. Tune rules on the first
 * half only and report the second.
 *
 *   node --conditions=medsyn-source --import tsx libs/deid/eval/pii-synth-to-gold.ts \
 *     ../shared/data/pii-synth/synth_dataset_v2.json tmp/gold-pii-synth.jsonl --split-seed 1
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { PhiLabel } from '../src';
import { COUNTRY_NAMES, US_STATES } from '../src/dictionaries';
import type { GoldRecord } from './gold-format';
import { sha256Hex } from '@medsyn/artifact-store';

const LABELS: Record<string, PhiLabel | undefined> = {
  PERSON: 'NAME',
  DATE_TIME: 'DATE',
  AGE: 'AGE',
  PHONE_NUMBER: 'CONTACT',
  EMAIL_ADDRESS: 'CONTACT',
  DOMAIN_NAME: 'CONTACT',
  IP_ADDRESS: 'CONTACT',
  US_SSN: 'ID',
  CREDIT_CARD: 'ID',
  IBAN_CODE: 'ID',
  US_DRIVER_LICENSE: 'ID',
  STREET_ADDRESS: 'LOCATION',
  ZIP_CODE: 'LOCATION',
  ORGANIZATION: 'LOCATION',
  GPE: 'LOCATION',
};

interface PresidioSample {
  full_text: string;
  spans: { entity_type: string; entity_value: string; start_position: number; end_position: number }[];
}
type Span = GoldRecord['spans'][number];

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/**
 * Countries, US states by name (in any case), a two-letter region code standing alone after a
 * comma or on its own line ("Hellendoorn, OV 21072"): state-level or larger, so not PHI inside an
 * address; and "nan", the generator's empty region (Python's NaN), which is no place at all.
 */
const STATE_OR_LARGER = new RegExp(
  `(?<![\\p{L}\\p{N}])(?:${[...COUNTRY_NAMES, ...Object.values(US_STATES), 'nan']
    .sort((a, b) => b.length - a.length)
    .map(escape)
    .join('|')})(?![\\p{L}\\p{N}])`,
  'giu',
);
const REGION_CODE = /(?<=(?:^|,|\n)\s*)[A-Z]{2}(?=\s*(?:$|\n|\d))/g;

/** A time of day after a date ("2020-06-20 14:11:22"): kept, as in reports. */
const TIME_OF_DAY = /\s+(?:at\s+)?\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?m\.?)?\s*$/i;

/** Code-point offsets of a string's UTF-16 index, for spans cut inside a value. */
const codePoints = (s: string) => [...s].length;

/** The span less the countries and states inside it, as one or more spans. */
function withoutStatesAndCountries(span: Span, value: string): Span[] {
  const out: Span[] = [];
  let from = 0;
  const cuts = [...value.matchAll(STATE_OR_LARGER), ...value.matchAll(REGION_CODE)].sort((a, b) => a.index - b.index);
  for (const m of cuts) {
    if (m.index < from) continue;
    if (/[\p{L}\p{N}]/u.test(value.slice(from, m.index)))
      out.push({
        ...span,
        start: span.start + codePoints(value.slice(0, from)),
        end: span.start + codePoints(value.slice(0, m.index)),
      });
    from = m.index + m[0].length;
  }
  if (/[\p{L}\p{N}]/u.test(value.slice(from)))
    out.push({ ...span, start: span.start + codePoints(value.slice(0, from)), end: span.end });
  return out;
}

function convert(sample: PresidioSample, id: string): GoldRecord {
  const chars = [...sample.full_text];
  return {
    id,
    text: sample.full_text,
    spans: sample.spans.flatMap((s): Span[] => {
      const label = LABELS[s.entity_type];
      if (!label) return [];
      const value = chars.slice(s.start_position, s.end_position).join('');
      const span: Span = { start: s.start_position, end: s.end_position, label };
      if (label === 'AGE') return Number.parseInt(value, 10) > 89 ? [span] : [];
      if (label === 'DATE') {
        // Safe Harbor keeps a year alone, and a weekday is no date element.
        if (/^(?:\d{4}|(?:mon|tues|wednes|thurs|fri|satur|sun)day)$/i.test(value.trim())) return [];
        const time = TIME_OF_DAY.exec(value);
        return [time ? { ...span, end: span.start + codePoints(value.slice(0, time.index)) } : span];
      }
      if (s.entity_type === 'GPE' || s.entity_type === 'STREET_ADDRESS' || s.entity_type === 'ZIP_CODE')
        return withoutStatesAndCountries(span, value);
      return [span];
    }),
  };
}

/** Which half a sentence is in: fixed by (seed, id). */
export const inTuningHalf = (seed: number, id: string) => parseInt(sha256Hex(`${seed}:${id}`).slice(0, 2), 16) < 128;

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'split-seed': { type: 'string' } } });
  const [input, output] = positionals;
  if (!input || !output)
    throw new Error('usage: pii-synth-to-gold.ts synth_dataset_v2.json OUT.jsonl [--split-seed N]');
  const samples = JSON.parse(readFileSync(input, 'utf8')) as PresidioSample[];
  const records = samples.map((sample, i) => convert(sample, `pii-synth-${i}`));
  const write = (path: string, rs: GoldRecord[]) => {
    writeFileSync(path, `${rs.map((r) => JSON.stringify(r)).join('\n')}\n`);
    console.log(`wrote ${rs.length} records to ${path}`);
  };
  write(output, records);
  if (values['split-seed'] !== undefined) {
    const seed = Number(values['split-seed']);
    const base = output.replace(/\.jsonl$/, '');
    write(
      `${base}.tune.jsonl`,
      records.filter((r) => inTuningHalf(seed, r.id)),
    );
    write(
      `${base}.held-out.jsonl`,
      records.filter((r) => !inTuningHalf(seed, r.id)),
    );
  }
}

if (require.main === module) main();
