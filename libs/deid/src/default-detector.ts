import { mergeSpans, RuleDetector } from './detector';
import { PhiTagger, type PhiTaggerOptions } from './tagger';
import type { PhiDetector, PhiLabel, PhiSpan } from './types';

/** Which detectors run: the rules alone, or the rules with the learned tagger (the default). */
export const DETECTOR_KINDS = ['rules', 'rules+tagger'] as const;
export type DetectorKind = (typeof DETECTOR_KINDS)[number];

/**
 * What the tagger's spans add to the rules': names and places, where only the context tells. The
 * structured kinds (dates, phones, IDs, ages) stay the rules' alone: on the dev corpus the
 * tagger's own dates cost far more precision than the recall they add (docs/anonymizer.md).
 */
export const TAGGER_LABELS: ReadonlySet<PhiLabel> = new Set<PhiLabel>(['NAME', 'LOCATION']);

/**
 * The one way the rules' and the tagger's spans combine, shared by the anonymizer and the tagger's
 * cross-validation. The tagger sees the rules' spans as features (it learnt when a rule's name or
 * place is right), so it has the last word on names and places: the rules' structured spans all
 * stay, their NAME and LOCATION spans only where a tagger span confirms them, and the tagger's own
 * NAME and LOCATION spans are added.
 */
export function combineRuleAndTaggerSpans(ruleSpans: readonly PhiSpan[], taggerSpans: readonly PhiSpan[]): PhiSpan[] {
  const confirmed = (s: PhiSpan) => !TAGGER_LABELS.has(s.label) || taggerSpans.some((t) => t.start < s.end && t.end > s.start);
  return mergeSpans([...ruleSpans.filter(confirmed), ...taggerSpans.filter((s) => TAGGER_LABELS.has(s.label))]);
}

/**
 * The anonymizer's detector: the rules carry the structured identifiers and strong name
 * contexts; the tagger shipped in `libs/deid/model/phi-tagger` carries names and places. The
 * model loads on first use, once.
 */
export function createDetector(kind: DetectorKind = 'rules+tagger', options: PhiTaggerOptions & { taggerDir?: string } = {}): PhiDetector {
  const rules = new RuleDetector();
  if (kind === 'rules') return rules;
  let tagger: Promise<PhiTagger> | undefined;
  return {
    async detect(text) {
      tagger ??= PhiTagger.load(options.taggerDir, options);
      return combineRuleAndTaggerSpans(rules.find(text), await (await tagger).detect(text));
    },
  };
}
