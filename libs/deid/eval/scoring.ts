import { readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { PHI_LABELS, type PhiDetector, type PhiLabel } from '../src';
import { codePointToUtf16 } from '../src/offsets';
import type { GoldRecord } from './gold-format';

/** Tokens are runs of letters and digits: punctuation and spaces are never scored. */
const TOKEN = /[\p{L}\p{N}]+/gu;

interface Counts {
  gold: number;
  caught: number;
  predicted: number;
  predictedTrue: number;
  exact: number;
}
const zero = (): Counts => ({ gold: 0, caught: 0, predicted: 0, predictedTrue: 0, exact: 0 });

export interface Scores {
  recall: number;
  precision: number;
  f1: number;
  /** Label-exact: a gold token counts only when predicted with its own label. */
  recallExact: number;
  precisionExact: number;
  f1Exact: number;
  goldTokens: number;
  predictedTokens: number;
}

export interface Evaluation {
  overall: Scores;
  byLabel: Record<PhiLabel, Scores>;
  tokens: number;
  records: number;
  /** Gold tokens missed, as `label: token (record id)`, for tuning on development corpora. */
  misses: string[];
  /** Predicted tokens outside gold, as `label/rule: token (record id)`. */
  falsePositives: string[];
}

const f1 = (p: number, r: number) => (p + r === 0 ? 0 : (2 * p * r) / (p + r));
function scores(c: Counts): Scores {
  const recall = c.gold ? c.caught / c.gold : 1;
  const precision = c.predicted ? c.predictedTrue / c.predicted : 1;
  const recallExact = c.gold ? c.exact / c.gold : 1;
  const precisionExact = c.predicted ? c.exact / c.predicted : 1;
  return {
    recall,
    precision,
    f1: f1(precision, recall),
    recallExact,
    precisionExact,
    f1Exact: f1(precisionExact, recallExact),
    goldTokens: c.gold,
    predictedTokens: c.predicted,
  };
}

/**
 * Token-level scores: a gold PHI token is caught when any predicted span covers it, whatever
 * the label; precision counts predicted tokens that are gold PHI. Label-exact scores as well.
 */
export async function evaluate(detector: PhiDetector, gold: GoldRecord[]): Promise<Evaluation> {
  const total = zero();
  const perLabel = Object.fromEntries(PHI_LABELS.map((l) => [l, zero()])) as Record<PhiLabel, Counts>;
  const misses: string[] = [];
  const falsePositives: string[] = [];
  let tokens = 0;
  const allPredicted = await Promise.all(gold.map((record) => detector.detect(record.text)));
  for (const [index, record] of gold.entries()) {
    const toUtf16 = codePointToUtf16(record.text);
    const goldSpans = record.spans.map((s) => ({ start: toUtf16(s.start), end: toUtf16(s.end), label: s.label }));
    const predicted = allPredicted[index]!;
    for (const match of record.text.matchAll(TOKEN)) {
      tokens++;
      const [start, end] = [match.index, match.index + match[0].length];
      const g = goldSpans.find((s) => s.start < end && s.end > start);
      const p = predicted.find((s) => s.start < end && s.end > start);
      if (g) {
        total.gold++;
        perLabel[g.label].gold++;
        if (p) {
          total.caught++;
          perLabel[g.label].caught++;
        } else misses.push(`${g.label}: ${match[0]} (${record.id} at ${start})`);
        if (p?.label === g.label) {
          total.exact++;
          perLabel[g.label].exact++;
        }
      }
      if (p) {
        total.predicted++;
        perLabel[p.label].predicted++;
        if (g) {
          total.predictedTrue++;
          perLabel[p.label].predictedTrue++;
        } else falsePositives.push(`${p.label}/${p.rule}: ${match[0]} (${record.id} at ${start})`);
      }
    }
  }
  return {
    overall: scores(total),
    byLabel: Object.fromEntries(PHI_LABELS.map((l) => [l, scores(perLabel[l])])) as Record<PhiLabel, Scores>,
    tokens,
    records: gold.length,
    misses,
    falsePositives,
  };
}

/** The IU X-ray report text fields, one string per report (already de-identified: XXXX). */
export function readIuReports(csvPath: string): string[] {
  const rows = parse(readFileSync(csvPath), { columns: true }) as Record<string, string>[];
  return rows.map((r) =>
    ['indication', 'comparison', 'findings', 'impression']
      .map((k) => r[k] ?? '')
      .filter(Boolean)
      .join('\n'),
  );
}

/**
 * Share of the tokens of already de-identified reports that the detector would redact: all of
 * it is over-redaction of clinical text. The XXXX placeholders are not counted as tokens.
 */
export async function overRedaction(
  detector: PhiDetector,
  reports: string[],
): Promise<{ notes: number; tokens: number; redacted: number; share: number; byRule: Record<string, number> }> {
  let tokens = 0;
  let redacted = 0;
  const byRule: Record<string, number> = {};
  const allSpans = await Promise.all(reports.map((text) => detector.detect(text)));
  for (const [index, text] of reports.entries()) {
    const spans = allSpans[index]!;
    for (const match of text.matchAll(TOKEN)) {
      if (match[0] === 'XXXX') continue;
      tokens++;
      const hit = spans.find((s) => s.start < match.index + match[0].length && s.end > match.index);
      if (hit) {
        redacted++;
        byRule[hit.rule] = (byRule[hit.rule] ?? 0) + 1;
      }
    }
  }
  return { notes: reports.length, tokens, redacted, share: tokens ? redacted / tokens : 0, byRule };
}
