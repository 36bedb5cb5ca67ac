/** The kinds of identifier the anonymizer finds: HIPAA Safe Harbor's 18, grouped as in the contract. */
export const PHI_LABELS = ['NAME', 'DATE', 'AGE', 'CONTACT', 'ID', 'LOCATION'] as const;
export type PhiLabel = (typeof PHI_LABELS)[number];

/** An identifier found in a text; offsets are UTF-16 code units (JavaScript string indices). */
export interface PhiSpan {
  start: number;
  /** Exclusive. */
  end: number;
  label: PhiLabel;
  /** Name of the rule that found it, for auditing. */
  rule: string;
}

/**
 * Finds identifiers: the rules (`RuleDetector`) and the learned tagger (`PhiTagger`) implement
 * it, and `combineDetectors` merges them. Asynchronous because a model runs on onnxruntime,
 * which batches calls made in the same tick.
 */
export interface PhiDetector {
  detect(text: string): Promise<PhiSpan[]>;
}

export type OutputMode = 'mask' | 'tag' | 'surrogate';
export const OUTPUT_MODES: readonly OutputMode[] = ['mask', 'tag', 'surrogate'];
