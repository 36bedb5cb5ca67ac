/**
 * Converts Presidio's synthetic PII sentences (pii-synth, MIT) to the gold format, keeping only
 * what HIPAA Safe Harbor asks to remove:
 *   PERSON -> NAME; DATE_TIME -> DATE, except a year or a weekday alone; AGE -> AGE when over 89 (younger ages are not PHI);
 *   PHONE_NUMBER, EMAIL_ADDRESS, DOMAIN_NAME, IP_ADDRESS -> CONTACT;
 *   US_SSN, CREDIT_CARD, IBAN_CODE, US_DRIVER_LICENSE -> ID;
 *   STREET_ADDRESS, ZIP_CODE, ORGANIZATION, GPE -> LOCATION, except countries and US states;
 *   TITLE and NRP (nationality, religion, politics) are not identifiers and are dropped.
 *
 *   node --conditions=medsyn-source --import tsx libs/deid/eval/pii-synth-to-gold.ts ../shared/data/pii-synth/synth_dataset_v2.json tmp/gold-pii-synth.jsonl
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { PhiLabel } from '../src';
import { NOT_LOCATIONS } from '../src/dictionaries';
import type { GoldRecord } from './gold-format';

const LABELS: Record<string, PhiLabel | undefined> = {
  PERSON: 'NAME', DATE_TIME: 'DATE', AGE: 'AGE', PHONE_NUMBER: 'CONTACT', EMAIL_ADDRESS: 'CONTACT', DOMAIN_NAME: 'CONTACT', IP_ADDRESS: 'CONTACT',
  US_SSN: 'ID', CREDIT_CARD: 'ID', IBAN_CODE: 'ID', US_DRIVER_LICENSE: 'ID', STREET_ADDRESS: 'LOCATION', ZIP_CODE: 'LOCATION', ORGANIZATION: 'LOCATION', GPE: 'LOCATION',
};

interface PresidioSample {
  full_text: string;
  spans: { entity_type: string; entity_value: string; start_position: number; end_position: number }[];
}

const [input, output] = process.argv.slice(2);
if (!input || !output) throw new Error('usage: pii-synth-to-gold.ts synth_dataset_v2.json OUT.jsonl');
const samples = JSON.parse(readFileSync(input, 'utf8')) as PresidioSample[];
const records: GoldRecord[] = samples.map((sample, i) => ({
  id: `pii-synth-${i}`,
  text: sample.full_text,
  spans: sample.spans.flatMap((s) => {
    const label = LABELS[s.entity_type];
    if (!label) return [];
    if (label === 'AGE' && !(Number.parseInt(s.entity_value, 10) > 89)) return [];
    // Safe Harbor keeps a year alone, and a weekday is no date element.
    if (label === 'DATE' && /^(?:\d{4}|(?:mon|tues|wednes|thurs|fri|satur|sun)day)$/i.test(s.entity_value.trim())) return [];
    if (s.entity_type === 'GPE' && NOT_LOCATIONS.has(s.entity_value.toLowerCase())) return [];
    return [{ start: s.start_position, end: s.end_position, label }];
  }),
}));
writeFileSync(output, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
console.log(`wrote ${records.length} records to ${output}`);
