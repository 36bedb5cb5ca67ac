/**
 * Evaluation harness: token-level recall, precision and F1 of the detector on gold JSONL files,
 * per label and overall (any label, and label-exact), plus over-redaction on IU X-ray reports.
 *
 *   npm run eval:anonymizer -- --gold libs/deid/eval/gold/radiology-sample.jsonl [--gold more.jsonl] [--iu FILE.csv] [--show-misses 20]
 *
 * Prints a table, then `RESULT {json}` last.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { PHI_LABELS, RuleDetector } from '../src';
import { readGold } from './gold-format';
import { evaluate, overRedaction, readIuReports, type Scores } from './scoring';

const DEFAULT_IU = '../shared/data/iu-xray/indiana_reports.csv';
const pct = (x: number) => `${(100 * x).toFixed(2)}%`.padStart(8);
const row = (name: string, s: Scores) =>
  `${name.padEnd(9)} ${String(s.goldTokens).padStart(7)} ${pct(s.recall)} ${pct(s.precision)} ${pct(s.f1)}   ${pct(s.recallExact)} ${pct(s.precisionExact)} ${pct(s.f1Exact)}`;

function main(): void {
  const { values } = parseArgs({ options: { gold: { type: 'string', multiple: true }, iu: { type: 'string' }, 'show-misses': { type: 'string', default: '0' } } });
  if (!values.gold?.length) throw new Error('usage: eval:anonymizer -- --gold FILE.jsonl [--gold FILE2.jsonl] [--iu indiana_reports.csv]');
  const detector = new RuleDetector();
  const result: Record<string, unknown> = {};
  const show = Number(values['show-misses']);
  for (const path of values.gold) {
    const evaluation = evaluate(detector, readGold(path));
    console.log(`\n${path}: ${evaluation.records} records, ${evaluation.tokens} tokens`);
    console.log(`label       gold   recall  precision     F1   | exact: recall precision     F1`);
    for (const label of PHI_LABELS) console.log(row(label, evaluation.byLabel[label]));
    console.log(row('overall', evaluation.overall));
    if (show) {
      console.log(`missed (first ${show}):\n  ${evaluation.misses.slice(0, show).join('\n  ')}`);
      console.log(`false positives (first ${show}):\n  ${evaluation.falsePositives.slice(0, show).join('\n  ')}`);
    }
    const o = evaluation.overall;
    result[path] = { recall: o.recall, precision: o.precision, f1: o.f1, recall_exact: o.recallExact, precision_exact: o.precisionExact, f1_exact: o.f1Exact, tokens: evaluation.tokens, gold_tokens: o.goldTokens };
  }
  const iuPath = values.iu ?? (existsSync(DEFAULT_IU) ? DEFAULT_IU : undefined);
  let iu: ReturnType<typeof overRedaction> | undefined;
  if (iuPath) {
    iu = overRedaction(detector, readIuReports(iuPath));
    console.log(`\nover-redaction on ${iuPath}: ${iu.redacted} of ${iu.tokens} tokens (${pct(iu.share).trim()}) by rule ${JSON.stringify(iu.byRule)}`);
  }
  const first = result[values.gold[0]!] as Record<string, number>;
  console.log(`RESULT ${JSON.stringify({ ...first, corpora: result, over_redaction: iu?.share, over_redaction_tokens: iu?.tokens })}`);
}

main();
