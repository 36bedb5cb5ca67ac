import { mergeSpans, RuleDetector } from './detector';
import { completeSpans } from './completion';
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
 * cross-validation: all the rules' spans plus the tagger's NAME and LOCATION spans. The tagger
 * sees the rules' spans as features (it learnt when a rule's name or place is right); letting it
 * veto the rules' names and places instead scored no better in cross-validation
 * (docs/anonymizer-tagger.md). Last, names and places are completed by the neighbouring given
 * name, initial, surname or place-name generic (`completeSpans`).
 */
export function combineRuleAndTaggerSpans(
  text: string,
  ruleSpans: readonly PhiSpan[],
  taggerSpans: readonly PhiSpan[],
): PhiSpan[] {
  return mergeSpans(
    completeSpans(text, mergeSpans([...ruleSpans, ...taggerSpans.filter((s) => TAGGER_LABELS.has(s.label))])),
  );
}

/**
 * The anonymizer's detector: the rules carry the structured identifiers and strong name
 * contexts; the tagger shipped in `libs/deid/model/phi-tagger` carries names and places. The
 * model loads on first use, once.
 */
export function createDetector(
  kind: DetectorKind = 'rules+tagger',
  options: PhiTaggerOptions & { taggerDir?: string } = {},
): PhiDetector {
  const rules = new RuleDetector();
  if (kind === 'rules') return rules;
  let tagger: Promise<PhiTagger> | undefined;
  return {
    async detect(text) {
      tagger ??= PhiTagger.load(options.taggerDir, options);
      // The tagger reads the rules' spans as features: found once, used twice.
      const ruleSpans = rules.find(text);
      return combineRuleAndTaggerSpans(text, ruleSpans, await (await tagger).detect(text, ruleSpans));
    },
  };
}
