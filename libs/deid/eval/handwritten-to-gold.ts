/**
 * Converts the hand-written reports (gold/handwritten.txt: PHI marked {LABEL|text}, one report per
 * paragraph) to the gold JSONL format. They were written apart from the generator's templates to
 * test phrasings the rules were not tuned on.
 *
 *   node --conditions=medsyn-source --import tsx libs/deid/eval/handwritten-to-gold.ts libs/deid/eval/gold/handwritten.txt libs/deid/eval/gold/handwritten.jsonl
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { PHI_LABELS, type PhiLabel } from '../src';
import type { GoldRecord } from './gold-format';

const [input, output] = process.argv.slice(2);
if (!input || !output) throw new Error('usage: handwritten-to-gold.ts handwritten.txt OUT.jsonl');
const paragraphs = readFileSync(input, 'utf8')
  .split('\n')
  .filter((line) => !line.startsWith('#'))
  .join('\n')
  .split(/\n\s*\n/)
  .map((p) => p.trim())
  .filter(Boolean);
const records: GoldRecord[] = paragraphs.map((paragraph, i) => {
  let text = '';
  const spans: GoldRecord['spans'] = [];
  let at = 0;
  for (const match of paragraph.matchAll(/\{([A-Z]+)\|([^}]*)\}/g)) {
    const label = match[1] as PhiLabel;
    if (!PHI_LABELS.includes(label)) throw new Error(`paragraph ${i + 1}: unknown label ${label}`);
    text += paragraph.slice(at, match.index);
    const start = [...text].length;
    text += match[2];
    spans.push({ start, end: [...text].length, label });
    at = match.index + match[0].length;
  }
  text += paragraph.slice(at);
  return { id: `handwritten-${i}`, text, spans };
});
writeFileSync(output, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
console.log(`wrote ${records.length} records to ${output}`);
