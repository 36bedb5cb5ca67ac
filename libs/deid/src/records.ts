import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { parse } from 'csv-parse';
import { stringify } from 'csv-stringify/sync';

/**
 * What a record id may be: ids are copied into outputs, errors.jsonl and logs, so they must be
 * opaque keys, never a name or phone number.
 */
export const RECORD_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
export const RECORD_ID_RULE =
  'must be 1 to 128 characters of A-Z a-z 0-9 . _ : - (an opaque key, never PHI; the value is not shown)';

export type RecordFormat = 'jsonl' | 'csv';

/** One input record (string fields), or why its line could not be read (never its content). */
export type RecordLine =
  { lineNumber: number; ok: true; record: Record<string, unknown> } | { lineNumber: number; ok: false; error: string };

/** The format a file name or media type suggests (CSV for .csv / text/csv, else JSON lines). */
export function guessRecordFormat(nameOrMediaType: string): RecordFormat {
  return /(?:\.csv$|text\/csv)/i.test(nameOrMediaType) ? 'csv' : 'jsonl';
}

/**
 * Streams records from JSON lines (one object per line) or RFC 4180 CSV with a header row.
 * A malformed line is reported with its line number and reading goes on.
 */
export async function* readRecords(input: Readable, format: RecordFormat): AsyncIterable<RecordLine> {
  if (format === 'jsonl') {
    let lineNumber = 0;
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      lineNumber++;
      if (line.trim() === '') continue;
      try {
        const value = JSON.parse(line) as unknown;
        if (value === null || typeof value !== 'object' || Array.isArray(value))
          yield { lineNumber, ok: false, error: 'not a JSON object' };
        else yield { lineNumber, ok: true, record: value as Record<string, unknown> };
      } catch {
        yield { lineNumber, ok: false, error: 'invalid JSON' };
      }
    }
    return;
  }
  const skipped: RecordLine[] = [];
  const parser = input.pipe(
    parse({
      columns: true,
      bom: true,
      skip_empty_lines: true,
      skip_records_with_error: true,
      info: true,
      on_skip: (error) => {
        skipped.push({
          lineNumber: (error as { lines?: number } | undefined)?.lines ?? 0,
          ok: false,
          error: `invalid CSV (${(error as { code?: string } | undefined)?.code ?? 'parse error'})`,
        });
      },
    }),
  );
  for await (const row of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
    while (skipped.length) yield skipped.shift()!;
    yield { lineNumber: row.info.lines, ok: true, record: row.record };
  }
  while (skipped.length) yield skipped.shift()!;
}

/** One RFC 4180 CSV row (quoted where needed), ending in a line break. */
export function csvRow(values: readonly unknown[]): string {
  return stringify([
    values.map((v) => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v))),
  ]);
}
