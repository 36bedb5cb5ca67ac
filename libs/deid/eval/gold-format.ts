import { readFileSync } from 'node:fs';
import { PHI_LABELS, type PhiLabel } from '../src';

/** One gold-standard line: offsets are Unicode code points, as in Python and the contract. */
export interface GoldRecord {
  id: string;
  text: string;
  spans: { start: number; end: number; label: PhiLabel }[];
}

/** Reads a gold JSONL file; a malformed line stops with its line number (gold files are ours). */
export function readGold(path: string): GoldRecord[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((line, i) => [line, i + 1] as const)
    .filter(([line]) => line.trim() !== '')
    .map(([line, n]) => {
      const record = JSON.parse(line) as GoldRecord;
      if (typeof record.text !== 'string' || !Array.isArray(record.spans))
        throw new Error(`${path}:${n}: needs text and spans`);
      for (const s of record.spans)
        if (!PHI_LABELS.includes(s.label)) throw new Error(`${path}:${n}: unknown label ${s.label}`);
      return record;
    });
}
