/**
 * Trains the PHI tagger and reports it honestly.
 *
 *   npm run train:phi-tagger -- --folds 5                         # patient-grouped CV report, ends with RESULT {json}
 *   npm run train:phi-tagger -- --out libs/deid/model/phi-tagger  # the shipped model, trained on every dev patient
 *   npm run train:phi-tagger -- --folds 5 --threads 1 --keep-original 0.3 --cv-out libs/deid/model/phi-tagger/cv.json --out libs/deid/model/phi-tagger   # both (how the shipped model is made)
 *
 * --keep-original p: each distinct identifier of a note keeps its own words with probability p
 * (else it gets a surrogate), so the model also learns the corpus's recurring names and places
 * (a hospital's own building and ward names recur across patients). The weights then hold those
 * words: fine for the PhysioNet corpus, whose identifiers are the authors' surrogates, but never
 * use p > 0 on notes with real PHI. Default 0.
 *
 * --save-outputs FILE / --outputs-from FILE: keep the CV's held-out outputs, then score decoding and
 * combination changes on them without training (valid while the rules, the tagger's features, are unchanged).
 *
 * --nested: NAME and LOCATION thresholds chosen inside each fold, on an inner held-out quarter of
 * its training patients (highest rules + tagger recall at precision >= --target-precision), and
 * for the shipped model on the pooled held-out outputs (written to tagger.json). Off by default:
 * the inner choice was too noisy to beat the fixed threshold (docs/anonymizer-tagger.md).
 *
 * Cross-validation: the dev corpus's patients (sorted by number) go to fold i mod k; each fold's
 * model trains on the other folds' notes (with surrogates) and IU reports, and is scored on the
 * untouched notes of its own patients and on its own share of the IU reports (never trained on).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sharedDataDir } from '@medsyn/testing';
import {
  PHI_LABELS,
  RuleDetector,
  TAGGER_LABELS,
  combineRuleAndTaggerSpans,
  mergeSpans,
  type PhiDetector,
  type PhiSpan,
} from '../src';
import { readGold } from '../eval/gold-format';
import { evaluate, overRedaction, readIuReports, type Evaluation } from '../eval/scoring';
import { DEFAULT_TAGGER_CONFIG, type TaggerConfig } from '../src/tagger/model';
import { PhiTagger, decodeSpans, type Thresholds } from '../src/tagger/phi-tagger';
import type { Token } from '../src/tagger/tokens';
import type { LabelledText } from './surrogates';
import { trainTagger } from './train';

const { values } = parseArgs({
  options: {
    gold: { type: 'string', default: join(sharedDataDir, 'physionet-deid-dev/gold.jsonl') },
    iu: { type: 'string', default: join(sharedDataDir, 'iu-xray/indiana_reports.csv') },
    folds: { type: 'string' },
    out: { type: 'string' },
    epochs: { type: 'string', default: '12' },
    seed: { type: 'string', default: '1' },
    threshold: { type: 'string', default: '0.8' },
    'negatives-per-epoch': { type: 'string', default: '1000' },
    'phi-weight': { type: 'string', default: '2' },
    lr: { type: 'string', default: '0.003' },
    'word-dropout': { type: 'string', default: '0.15' },
    'keep-original': { type: 'string', default: '0' },
    /** JSON merged over DEFAULT_TAGGER_CONFIG, e.g. '{"channels":96}' (the shipped config is the default). */
    config: { type: 'string', default: '{}' },
    threads: { type: 'string', default: '2' },
    /** Per-label thresholds (NAME, LOCATION) chosen inside each fold on an inner held-out split of its training patients. */
    nested: { type: 'boolean', default: false },
    'target-precision': { type: 'string', default: '0.85' },
    'cv-out': { type: 'string' },
    /** Writes the pooled held-out outputs (tokens and log-probabilities per note) to this file... */
    'save-outputs': { type: 'string' },
    /** ...so that a later run can score decoding and combination policies on them without training (--outputs-from). */
    'outputs-from': { type: 'string' },
  },
});

/** Fixed before any CV run: PHI when P(O) < 0.8, i.e. P(PHI) > 0.2 (leaks cost more than over-redaction). */
const threshold = Number(values.threshold);
const epochs = Number(values.epochs);
const seed = Number(values.seed);
const negativesPerEpoch = Number(values['negatives-per-epoch']);
const log = (line: string) => console.log(line);
const hyper = {
  phiWeight: Number(values['phi-weight']),
  learningRate: Number(values.lr),
  wordDropout: Number(values['word-dropout']),
  keepOriginal: Number(values['keep-original']),
};

const config: TaggerConfig = { ...DEFAULT_TAGGER_CONFIG, ...(JSON.parse(values.config) as Partial<TaggerConfig>) };
const notes = readGold(values.gold);
const iu = readIuReports(values.iu);
const iuExamples: LabelledText[] = iu.map((text) => ({
  text,
  spans: [],
  ignore: [...text.matchAll(/XXXX/g)].map((m) => ({ start: m.index, end: m.index + 4 })),
}));
const patient = (id: string) => Number(id.split('-')[0]);
const asLabelled = (n: (typeof notes)[number]): LabelledText => ({ text: n.text, spans: n.spans });
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

async function train(trainNotes: LabelledText[], negatives: LabelledText[]) {
  return trainTagger({
    notes: trainNotes,
    negatives,
    negativesPerEpoch,
    config,
    epochs,
    seed,
    threshold,
    threads: Number(values.threads),
    log,
    ...hyper,
  });
}

function table(title: string, e: Evaluation): Record<string, unknown> {
  console.log(`\n${title}: ${e.records} notes, ${e.tokens} tokens`);
  console.log('label      gold  recall  precision');
  const byLabel: Record<string, unknown> = {};
  for (const label of PHI_LABELS) {
    const s = e.byLabel[label];
    if (s.goldTokens === 0 && s.predictedTokens === 0) continue;
    console.log(
      `${label.padEnd(9)} ${String(s.goldTokens).padStart(5)} ${pct(s.recall).padStart(7)} ${pct(s.precision).padStart(9)}  (predicted ${s.predictedTokens})`,
    );
    byLabel[label] = { gold: s.goldTokens, recall: s.recall, precision: s.precision, predicted: s.predictedTokens };
  }
  console.log(
    `${'overall'.padEnd(9)} ${String(e.overall.goldTokens).padStart(5)} ${pct(e.overall.recall).padStart(7)} ${pct(e.overall.precision).padStart(9)}  (predicted ${e.overall.predictedTokens})`,
  );
  return {
    recall: e.overall.recall,
    precision: e.overall.precision,
    f1: e.overall.f1,
    gold: e.overall.goldTokens,
    predicted: e.overall.predictedTokens,
    byLabel,
  };
}

type Outputs = Map<string, { tokens: Token[]; logProbs: Float32Array }>;
type Note = (typeof notes)[number];

const rules = new RuleDetector();
const ruleCache = new Map<string, PhiSpan[]>();
const ruleSpans = (text: string) => {
  let spans = ruleCache.get(text);
  if (!spans) ruleCache.set(text, (spans = rules.find(text)));
  return spans;
};

/** The tagger's held-out outputs decoded with `thresholds(text)`, alone and combined with the rules by the shipped policy. */
function detectors(outputs: Outputs, t: number, thresholds: (text: string) => Thresholds, repeats = true) {
  const tagger: PhiDetector = {
    detect: async (text: string): Promise<PhiSpan[]> => {
      const out = outputs.get(text);
      if (!out) throw new Error('text was not held out in any fold');
      return decodeSpans(text, out.tokens, out.logProbs, t, thresholds(text), repeats);
    },
  };
  const both: PhiDetector = {
    detect: async (text) => combineRuleAndTaggerSpans(text, ruleSpans(text), await tagger.detect(text)),
  };
  return { tagger, both };
}

const GRID = [0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99];
const targetPrecision = Number(values['target-precision']);

/**
 * NAME and LOCATION thresholds on P(O) for held-out outputs: the highest rules + tagger recall
 * with precision >= the target (or, if no pair reaches it, the highest precision).
 */
async function chooseThresholds(
  outputs: Outputs,
  scored: Note[],
): Promise<{ thresholds: Thresholds; recall: number; precision: number }> {
  let best: { thresholds: Thresholds; recall: number; precision: number } | undefined;
  for (const name of GRID) {
    for (const location of GRID) {
      const thresholds: Thresholds = { NAME: name, LOCATION: location };
      const { overall } = await evaluate(detectors(outputs, threshold, () => thresholds).both, scored);
      const candidate: typeof best = { thresholds, recall: overall.recall, precision: overall.precision };
      const ok = (c: NonNullable<typeof best>) => c.precision >= targetPrecision;
      if (
        !best ||
        (ok(candidate) && (!ok(best) || candidate.recall > best.recall)) ||
        (!ok(candidate) && !ok(best) && candidate.precision > best.precision)
      )
        best = candidate;
    }
  }
  return best!;
}

async function heldOutOutputs(
  trainNotes: LabelledText[],
  negatives: LabelledText[],
  texts: string[],
  outputs: Outputs,
) {
  const trained = await train(trainNotes, negatives);
  const tagger = await PhiTagger.create(trained.model, trained.meta);
  const results = await tagger.logProbabilities(texts);
  texts.forEach((text, i) => outputs.set(text, results[i]!));
  await tagger.release();
}

/** Held-out outputs as JSON lines (text, token offsets, log-probabilities): CV folds' results kept for policy experiments. */
function writeOutputs(file: string, outputs: Outputs): void {
  const lines = [...outputs].map(([text, { tokens, logProbs }]) =>
    JSON.stringify({
      text,
      tokens: tokens.flatMap((t) => [t.start, t.end]),
      logProbs: Array.from(logProbs, (x) => Math.round(x * 1e4) / 1e4),
    }),
  );
  writeFileSync(file, `${lines.join('\n')}\n`);
}

function readOutputs(file: string): Outputs {
  const outputs: Outputs = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const { text, tokens, logProbs } = JSON.parse(line) as { text: string; tokens: number[]; logProbs: number[] };
    outputs.set(text, {
      tokens: Array.from({ length: tokens.length / 2 }, (_, i) => ({ start: tokens[2 * i]!, end: tokens[2 * i + 1]! })),
      logProbs: Float32Array.from(logProbs),
    });
  }
  return outputs;
}

async function crossValidate(k: number) {
  const patients = [...new Set(notes.map((n) => patient(n.id)))].sort((a, b) => a - b);
  const foldOf = new Map(patients.map((p, i) => [p, i % k]));
  /** Held-out model outputs, by text: a pooled detector decodes them at any threshold. */
  const outputs: Outputs = new Map();
  /** Per fold: the thresholds chosen on its own training patients (nested), never on its held-out notes. */
  const foldThresholds: Thresholds[] = [];
  const foldOfText = new Map<string, number>();
  for (let fold = 0; fold < k && !values['outputs-from']; fold++) {
    const trainNotes = notes.filter((n) => foldOf.get(patient(n.id)) !== fold);
    const heldOut = notes.filter((n) => foldOf.get(patient(n.id)) === fold);
    const iuTrain = iuExamples.filter((_, i) => i % k !== fold);
    const iuHeldOut = iu.filter((_, i) => i % k === fold);
    log(
      `fold ${fold + 1}/${k}: training on ${trainNotes.length} notes of ${patients.length - patients.filter((p) => foldOf.get(p) === fold).length} patients + ${iuTrain.length} IU reports; scoring ${heldOut.length} notes, ${iuHeldOut.length} IU reports`,
    );
    if (values.nested) {
      // Inner split of the training patients: every 4th of them (in order) is held out of an inner model.
      const inner = patients.filter((p) => foldOf.get(p) !== fold);
      const innerOut = new Set(inner.filter((_, i) => i % 4 === fold % 4));
      const innerTrain = trainNotes.filter((n) => !innerOut.has(patient(n.id)));
      const innerHeldOut = trainNotes.filter((n) => innerOut.has(patient(n.id)));
      const innerOutputs: Outputs = new Map();
      await heldOutOutputs(
        innerTrain.map(asLabelled),
        iuTrain,
        innerHeldOut.map((n) => n.text),
        innerOutputs,
      );
      const chosen = await chooseThresholds(innerOutputs, innerHeldOut);
      foldThresholds[fold] = chosen.thresholds;
      log(
        `fold ${fold + 1}: inner split (${innerHeldOut.length} notes of ${innerOut.size} patients) chose ${JSON.stringify(chosen.thresholds)} (inner rules + tagger ${pct(chosen.recall)} / ${pct(chosen.precision)})`,
      );
    } else foldThresholds[fold] = {};
    const texts = [...heldOut.map((n) => n.text), ...iuHeldOut];
    texts.forEach((text) => foldOfText.set(text, fold));
    await heldOutOutputs(trainNotes.map(asLabelled), iuTrain, texts, outputs);
  }
  if (values['outputs-from']) for (const [text, out] of readOutputs(values['outputs-from'])) outputs.set(text, out);
  if (values['save-outputs']) writeOutputs(values['save-outputs'], outputs);
  const nestedThresholds = (text: string) => foldThresholds[foldOfText.get(text)!] ?? {};
  const noPhi = notes.filter((n) => n.spans.length === 0).map((n) => n.text);
  const report = async (t: number, thresholds: (text: string) => Thresholds, print: boolean) => {
    const { tagger, both } = detectors(outputs, t, thresholds);
    const [alone, combined, rulesOnly] = await Promise.all([
      evaluate(tagger, notes),
      evaluate(both, notes),
      evaluate(rules, notes),
    ]);
    const iuAlone = await overRedaction(tagger, iu);
    const iuBoth = await overRedaction(both, iu);
    const iuRules = await overRedaction(rules, iu);
    const quietAlone = await overRedaction(tagger, noPhi);
    const quietBoth = await overRedaction(both, noPhi);
    if (!print)
      return { t, alone: alone.overall, combined: combined.overall, iuAlone: iuAlone.share, iuBoth: iuBoth.share };
    const result = {
      threshold: t,
      thresholds_by_fold: values.nested ? foldThresholds : undefined,
      tagger: table(
        `tagger alone, pooled over ${k} folds (P(O) < ${t}${values.nested ? ', NAME/LOCATION thresholds nested per fold' : ''})`,
        alone,
      ),
      rules_and_tagger: table(`rules + tagger, pooled over ${k} folds`, combined),
      rules: table('rules alone (no training; for reference)', rulesOnly),
      iu_over_redaction: {
        tagger: iuAlone.share,
        rules_and_tagger: iuBoth.share,
        rules: iuRules.share,
        tokens: iuAlone.tokens,
        tagger_tokens: iuAlone.redacted,
        rules_and_tagger_tokens: iuBoth.redacted,
      },
      no_phi_notes_over_redaction: {
        notes: noPhi.length,
        tokens: quietAlone.tokens,
        tagger: quietAlone.share,
        rules_and_tagger: quietBoth.share,
      },
    };
    console.log(
      `\nIU over-redaction (held-out folds): tagger ${pct(iuAlone.share)} (${iuAlone.redacted}/${iuAlone.tokens}), rules+tagger ${pct(iuBoth.share)}, rules ${pct(iuRules.share)}`,
    );
    console.log(
      `dev notes without PHI (${noPhi.length}): tagger redacts ${pct(quietAlone.share)} of ${quietAlone.tokens} tokens, rules+tagger ${pct(quietBoth.share)}`,
    );
    console.log(`tagger misses: ${alone.misses.slice(0, 40).join('; ')}`);
    console.log(`combined misses: ${combined.misses.join('; ')}`);
    console.log(`combined false positives: ${combined.falsePositives.slice(0, 80).join('; ')}`);
    return result;
  };
  // Sensitivity only: the reported thresholds are the nested ones (or the one fixed beforehand).
  console.log(
    '\nthreshold sweep, one threshold for all labels (information, not used to choose): t, tagger R/P, rules+tagger R/P, IU over-redaction tagger / combined',
  );
  for (const t of [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99]) {
    const r = (await report(t, () => ({}), false)) as {
      alone: Evaluation['overall'];
      combined: Evaluation['overall'];
      iuAlone: number;
      iuBoth: number;
    };
    // Two other policies, for comparison only: the rules' names and places kept only where a tagger span overlaps them (veto), or all left to the tagger.
    const { tagger } = detectors(outputs, t, () => ({}));
    const tagged = async (text: string) => (await tagger.detect(text)).filter((s) => TAGGER_LABELS.has(s.label));
    const veto = await evaluate(
      {
        detect: async (text) => {
          const mine = await tagged(text);
          const confirmed = ruleSpans(text).filter(
            (s) => !TAGGER_LABELS.has(s.label) || mine.some((m) => m.start < s.end && m.end > s.start),
          );
          return mergeSpans([...confirmed, ...mine]);
        },
      },
      notes,
    );
    const taggerOnly = await evaluate(
      {
        detect: async (text) =>
          mergeSpans([...ruleSpans(text).filter((s) => !TAGGER_LABELS.has(s.label)), ...(await tagged(text))]),
      },
      notes,
    );
    const once = await evaluate(detectors(outputs, t, () => ({}), false).both, notes);
    console.log(
      `  ${t}: ${pct(r.alone.recall)} / ${pct(r.alone.precision)}   ${pct(r.combined.recall)} / ${pct(r.combined.precision)}   ${pct(r.iuAlone)} / ${pct(r.iuBoth)}   (veto ${pct(veto.overall.recall)} / ${pct(veto.overall.precision)}, tagger's names ${pct(taggerOnly.overall.recall)} / ${pct(taggerOnly.overall.precision)}, no repeats ${pct(once.overall.recall)} / ${pct(once.overall.precision)})`,
    );
  }
  const result = await report(threshold, nestedThresholds, true);
  // For the shipped model: the same choice made on all the held-out outputs (each note scored by a model that never saw it).
  const shipped = values.nested ? await chooseThresholds(outputs, notes) : undefined;
  if (shipped)
    log(
      `thresholds for a model trained on every patient, chosen on the pooled held-out outputs: ${JSON.stringify(shipped.thresholds)} (pooled ${pct(shipped.recall)} / ${pct(shipped.precision)}, optimistic: chosen on these notes)`,
    );
  const line = {
    folds: k,
    seed,
    epochs,
    ...hyper,
    nested: values.nested,
    target_precision: targetPrecision,
    config,
    ...result,
    shipped_thresholds: shipped?.thresholds,
  };
  console.log(`RESULT ${JSON.stringify(line)}`);
  if (values['cv-out']) writeFileSync(values['cv-out'], `${JSON.stringify(line, null, 2)}\n`);
  return shipped?.thresholds;
}

async function main() {
  const started = Date.now();
  let thresholds: Thresholds | undefined;
  if (values.folds) thresholds = await crossValidate(Number(values.folds));
  if (values.out) {
    const trained = await train(notes.map(asLabelled), iuExamples);
    // Per-label thresholds come from this run's CV (--folds) or, without it, from the cv.json already in --out.
    if (!thresholds && values.nested)
      thresholds = (
        JSON.parse(readFileSync(join(values.out, 'cv.json'), 'utf8')) as { shipped_thresholds?: Thresholds }
      ).shipped_thresholds;
    if (thresholds) trained.meta.thresholds = thresholds;
    mkdirSync(values.out, { recursive: true });
    writeFileSync(join(values.out, 'model.onnx'), trained.model);
    writeFileSync(join(values.out, 'tagger.json'), `${JSON.stringify(trained.meta, null, 2)}\n`);
    log(`wrote ${values.out}/model.onnx (${(trained.model.length / 1e6).toFixed(2)} MB) and tagger.json`);
  }
  if (!values.folds && !values.out)
    throw new Error(
      'usage: train:phi-tagger -- [--folds 5] [--out libs/deid/model/phi-tagger] [--epochs 12] [--seed 1]',
    );
  log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
