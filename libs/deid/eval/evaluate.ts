/**
 * Evaluation harness: token-level recall, precision and F1 per label and overall (any label, and
 * label-exact). The real corpus comes first: PhysioNet deid's development half (real ICU nursing
 * notes, gold PHI spans), with the over-redaction on its notes that hold no PHI; then any other
 * gold file given (ours are template-generated: unit-test material, not evidence of quality),
 * then over-redaction on IU X-ray reports.
 *
 *   npm run eval:anonymizer [-- --detector rules|tagger|rules+tagger] [--gold more.jsonl] [--iu FILE.csv] [--show-misses 20]
 *
 * Prints tables, then `RESULT {json}` last.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sharedDataDir } from '@medsyn/testing';
import { PHI_LABELS, type PhiDetector } from '../src';
import { detectorByName, DETECTOR_NAMES, type DetectorName } from './detectors';
import { readGold, type GoldRecord } from './gold-format';
import { evaluate, overRedaction, readIuReports, type Evaluation, type Scores } from './scoring';

export const DEV_CORPUS = path.join(sharedDataDir, 'physionet-deid-dev/gold.jsonl');
export const IU_REPORTS = path.join(sharedDataDir, 'iu-xray/indiana_reports.csv');

const pct = (x: number) => `${(100 * x).toFixed(2)}%`.padStart(8);
const row = (name: string, s: Scores) =>
  `${name.padEnd(9)} ${String(s.goldTokens).padStart(7)} ${pct(s.recall)} ${pct(s.precision)} ${pct(s.f1)}   ${pct(s.recallExact)} ${pct(s.precisionExact)} ${pct(s.f1Exact)}`;

function printEvaluation(title: string, evaluation: Evaluation, show: number): void {
  console.log(`\n${title}: ${evaluation.records} records, ${evaluation.tokens} tokens`);
  console.log(`label       gold   recall  precision     F1   | exact: recall precision     F1`);
  for (const label of PHI_LABELS) console.log(row(label, evaluation.byLabel[label]));
  console.log(row('overall', evaluation.overall));
  if (show) {
    console.log(`missed (first ${show}):\n  ${evaluation.misses.slice(0, show).join('\n  ')}`);
    console.log(`false positives (first ${show}):\n  ${evaluation.falsePositives.slice(0, show).join('\n  ')}`);
  }
}

const summary = (e: Evaluation) => ({
  recall: e.overall.recall,
  precision: e.overall.precision,
  f1: e.overall.f1,
  recall_exact: e.overall.recallExact,
  precision_exact: e.overall.precisionExact,
  tokens: e.tokens,
  gold_tokens: e.overall.goldTokens,
  by_label: Object.fromEntries(
    PHI_LABELS.filter((l) => e.byLabel[l].goldTokens).map((l) => [
      l,
      { recall: e.byLabel[l].recall, precision: e.byLabel[l].precision, gold_tokens: e.byLabel[l].goldTokens },
    ]),
  ),
});

/** Scores a real gold corpus: the figures, and the over-redaction on its notes that hold no PHI. */
export async function evaluateCorpus(detector: PhiDetector, records: GoldRecord[]) {
  const evaluation = await evaluate(detector, records);
  const clean = await overRedaction(
    detector,
    records.filter((r) => r.spans.length === 0).map((r) => r.text),
  );
  return { evaluation, clean };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      detector: { type: 'string', default: 'rules+tagger' },
      gold: { type: 'string', multiple: true },
      iu: { type: 'string' },
      'show-misses': { type: 'string', default: '0' },
    },
  });
  if (!DETECTOR_NAMES.includes(values.detector as DetectorName))
    throw new Error(`--detector must be one of ${DETECTOR_NAMES.join(', ')}`);
  const detector = await detectorByName(values.detector as DetectorName);
  const show = Number(values['show-misses']);
  const result: Record<string, unknown> = { detector: values.detector };

  if (existsSync(DEV_CORPUS)) {
    const { evaluation, clean } = await evaluateCorpus(detector, readGold(DEV_CORPUS));
    printEvaluation(
      `PhysioNet deid, development half (real ICU notes; detector: ${values.detector}) ${DEV_CORPUS}`,
      evaluation,
      show,
    );
    console.log(
      `over-redaction on its ${clean.notes} notes without PHI: ${clean.redacted} of ${clean.tokens} tokens (${pct(clean.share).trim()})`,
    );
    result.physionet_deid_dev = { ...summary(evaluation), over_redaction_no_phi_notes: clean.share };
  } else console.log(`(skipped: the real dev corpus is not at ${DEV_CORPUS}; set MEDSYN_SHARED_DATA)`);

  for (const file of values.gold ?? []) {
    const evaluation = await evaluate(detector, readGold(file));
    printEvaluation(`${file} (check that a generated corpus is labelled as such before quoting it)`, evaluation, show);
    result[file] = summary(evaluation);
  }

  const iuPath = values.iu ?? (existsSync(IU_REPORTS) ? IU_REPORTS : undefined);
  if (iuPath) {
    const iu = await overRedaction(detector, readIuReports(iuPath));
    console.log(
      `\nover-redaction on IU X-ray reports ${iuPath}: ${iu.redacted} of ${iu.tokens} tokens (${pct(iu.share).trim()}) by rule ${JSON.stringify(iu.byRule)}`,
    );
    result.iu_over_redaction = iu.share;
    result.iu_tokens = iu.tokens;
  }
  console.log(`RESULT ${JSON.stringify(result)}`);
}

if (require.main === module) void main();
