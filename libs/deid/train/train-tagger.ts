/**
 * Trains the PHI tagger and reports it honestly.
 *
 *   npm run train:phi-tagger -- --folds 5                         # patient-grouped CV report, ends with RESULT {json}
 *   npm run train:phi-tagger -- --out libs/deid/model/phi-tagger  # the shipped model, trained on every dev patient
 *
 * Cross-validation: the dev corpus's patients (sorted by number) go to fold i mod k; each fold's
 * model trains on the other folds' notes (with surrogates) and IU reports, and is scored on the
 * untouched notes of its own patients and on its own share of the IU reports (never trained on).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PHI_LABELS, RuleDetector, combineDetectors, type PhiDetector, type PhiSpan } from '../src';
import { readGold } from '../eval/gold-format';
import { evaluate, overRedaction, readIuReports, type Evaluation } from '../eval/scoring';
import { DEFAULT_TAGGER_CONFIG } from '../src/tagger/model';
import { PhiTagger, decodeSpans } from '../src/tagger/phi-tagger';
import type { Token } from '../src/tagger/tokens';
import type { LabelledText } from './surrogates';
import { trainTagger } from './train';

const { values } = parseArgs({
  options: {
    gold: { type: 'string', default: '/work/shared/data/physionet-deid-dev/gold.jsonl' },
    iu: { type: 'string', default: '/work/shared/data/iu-xray/indiana_reports.csv' },
    folds: { type: 'string' },
    out: { type: 'string' },
    epochs: { type: 'string', default: '8' },
    seed: { type: 'string', default: '1' },
    threshold: { type: 'string', default: '0.8' },
    'negatives-per-epoch': { type: 'string', default: '1000' },
    threads: { type: 'string', default: '2' },
  },
});

/** Fixed before any CV run: PHI when P(O) < 0.8, i.e. P(PHI) > 0.2 (leaks cost more than over-redaction). */
const threshold = Number(values.threshold);
const epochs = Number(values.epochs);
const seed = Number(values.seed);
const negativesPerEpoch = Number(values['negatives-per-epoch']);
const log = (line: string) => console.log(line);

const notes = readGold(values.gold);
const iu = readIuReports(values.iu);
const iuExamples: LabelledText[] = iu.map((text) => ({ text, spans: [], ignore: [...text.matchAll(/XXXX/g)].map((m) => ({ start: m.index, end: m.index + 4 })) }));
const patient = (id: string) => Number(id.split('-')[0]);
const asLabelled = (n: (typeof notes)[number]): LabelledText => ({ text: n.text, spans: n.spans });
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

async function train(trainNotes: LabelledText[], negatives: LabelledText[]) {
  return trainTagger({ notes: trainNotes, negatives, negativesPerEpoch, config: DEFAULT_TAGGER_CONFIG, epochs, seed, threshold, threads: Number(values.threads), log });
}

function table(title: string, e: Evaluation): Record<string, unknown> {
  console.log(`\n${title}: ${e.records} notes, ${e.tokens} tokens`);
  console.log('label      gold  recall  precision');
  const byLabel: Record<string, unknown> = {};
  for (const label of PHI_LABELS) {
    const s = e.byLabel[label];
    if (s.goldTokens === 0 && s.predictedTokens === 0) continue;
    console.log(`${label.padEnd(9)} ${String(s.goldTokens).padStart(5)} ${pct(s.recall).padStart(7)} ${pct(s.precision).padStart(9)}  (predicted ${s.predictedTokens})`);
    byLabel[label] = { gold: s.goldTokens, recall: s.recall, precision: s.precision, predicted: s.predictedTokens };
  }
  console.log(`${'overall'.padEnd(9)} ${String(e.overall.goldTokens).padStart(5)} ${pct(e.overall.recall).padStart(7)} ${pct(e.overall.precision).padStart(9)}  (predicted ${e.overall.predictedTokens})`);
  return { recall: e.overall.recall, precision: e.overall.precision, f1: e.overall.f1, gold: e.overall.goldTokens, predicted: e.overall.predictedTokens, byLabel };
}

async function crossValidate(k: number) {
  const patients = [...new Set(notes.map((n) => patient(n.id)))].sort((a, b) => a - b);
  const foldOf = new Map(patients.map((p, i) => [p, i % k]));
  /** Held-out model outputs, by text: a pooled detector decodes them at any threshold. */
  const outputs = new Map<string, { tokens: Token[]; logProbs: Float32Array }>();
  for (let fold = 0; fold < k; fold++) {
    const trainNotes = notes.filter((n) => foldOf.get(patient(n.id)) !== fold).map(asLabelled);
    const heldOut = notes.filter((n) => foldOf.get(patient(n.id)) === fold);
    const iuTrain = iuExamples.filter((_, i) => i % k !== fold);
    const iuHeldOut = iu.filter((_, i) => i % k === fold);
    log(`fold ${fold + 1}/${k}: training on ${trainNotes.length} notes of ${patients.length - patients.filter((p) => foldOf.get(p) === fold).length} patients + ${iuTrain.length} IU reports; scoring ${heldOut.length} notes, ${iuHeldOut.length} IU reports`);
    const trained = await train(trainNotes, iuTrain);
    const tagger = await PhiTagger.create(trained.model, trained.meta);
    const texts = [...heldOut.map((n) => n.text), ...iuHeldOut];
    const results = await tagger.logProbabilities(texts);
    texts.forEach((text, i) => outputs.set(text, results[i]!));
    await tagger.release();
  }
  const pooled = (t: number): PhiDetector => ({
    detect: async (text: string): Promise<PhiSpan[]> => {
      const out = outputs.get(text);
      if (!out) throw new Error('text was not held out in any fold');
      return decodeSpans(text, out.tokens, out.logProbs, t);
    },
  });
  const rules = new RuleDetector();
  const noPhi = notes.filter((n) => n.spans.length === 0).map((n) => n.text);
  const report = async (t: number, print: boolean) => {
    const tagger = pooled(t);
    const both = combineDetectors(rules, tagger);
    const [alone, combined, rulesOnly] = await Promise.all([evaluate(tagger, notes), evaluate(both, notes), evaluate(rules, notes)]);
    const iuAlone = await overRedaction(tagger, iu);
    const iuBoth = await overRedaction(both, iu);
    const iuRules = await overRedaction(rules, iu);
    const quietAlone = await overRedaction(tagger, noPhi);
    const quietBoth = await overRedaction(both, noPhi);
    if (!print) return { t, alone: alone.overall, combined: combined.overall, iuAlone: iuAlone.share, iuBoth: iuBoth.share };
    const result = {
      threshold: t,
      tagger: table(`tagger alone, pooled over ${k} folds (P(O) < ${t})`, alone),
      rules_and_tagger: table(`rules + tagger, pooled over ${k} folds`, combined),
      rules: table('rules alone (no training; for reference)', rulesOnly),
      iu_over_redaction: { tagger: iuAlone.share, rules_and_tagger: iuBoth.share, rules: iuRules.share, tokens: iuAlone.tokens, tagger_tokens: iuAlone.redacted, rules_and_tagger_tokens: iuBoth.redacted },
      no_phi_notes_over_redaction: { notes: noPhi.length, tokens: quietAlone.tokens, tagger: quietAlone.share, rules_and_tagger: quietBoth.share },
    };
    console.log(`\nIU over-redaction (held-out folds): tagger ${pct(iuAlone.share)} (${iuAlone.redacted}/${iuAlone.tokens}), rules+tagger ${pct(iuBoth.share)}, rules ${pct(iuRules.share)}`);
    console.log(`dev notes without PHI (${noPhi.length}): tagger redacts ${pct(quietAlone.share)} of ${quietAlone.tokens} tokens, rules+tagger ${pct(quietBoth.share)}`);
    console.log(`tagger misses: ${alone.misses.slice(0, 40).join('; ')}`);
    console.log(`combined misses: ${combined.misses.join('; ')}`);
    console.log(`tagger false positives: ${alone.falsePositives.slice(0, 60).join('; ')}`);
    return result;
  };
  // Sensitivity only: the reported threshold is the one fixed beforehand.
  console.log('\nthreshold sweep (information, not used to choose): t, tagger R/P, rules+tagger R/P, IU over-redaction tagger / combined');
  for (const t of [0.5, 0.7, 0.8, 0.9, 0.95, 0.98]) {
    const r = (await report(t, false)) as { alone: Evaluation['overall']; combined: Evaluation['overall']; iuAlone: number; iuBoth: number };
    console.log(`  ${t}: ${pct(r.alone.recall)} / ${pct(r.alone.precision)}   ${pct(r.combined.recall)} / ${pct(r.combined.precision)}   ${pct(r.iuAlone)} / ${pct(r.iuBoth)}`);
  }
  const result = await report(threshold, true);
  console.log(`RESULT ${JSON.stringify({ folds: k, seed, epochs, config: DEFAULT_TAGGER_CONFIG, ...result })}`);
}

async function main() {
  const started = Date.now();
  if (values.folds) await crossValidate(Number(values.folds));
  if (values.out) {
    const trained = await train(notes.map(asLabelled), iuExamples);
    mkdirSync(values.out, { recursive: true });
    writeFileSync(join(values.out, 'model.onnx'), trained.model);
    writeFileSync(join(values.out, 'tagger.json'), `${JSON.stringify(trained.meta, null, 2)}\n`);
    log(`wrote ${values.out}/model.onnx (${(trained.model.length / 1e6).toFixed(2)} MB) and tagger.json`);
  }
  if (!values.folds && !values.out) throw new Error('usage: train:phi-tagger -- [--folds 5] [--out libs/deid/model/phi-tagger] [--epochs 12] [--seed 1]');
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
