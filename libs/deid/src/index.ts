export * from './types';
export { RuleDetector, combineDetectors, mergeSpans } from './detector';
export {
  createDetector,
  combineRuleAndTaggerSpans,
  DETECTOR_KINDS,
  TAGGER_LABELS,
  type DetectorKind,
} from './default-detector';
export { RULES, type Rule } from './rules';
export {
  Anonymizer,
  InvalidReportError,
  sanitize,
  type AnonymizedReport,
  type AnonymizerOptions,
  type ReportInput,
} from './anonymizer';
export { SurrogateGenerator, shiftDate, parseDate } from './surrogates';
export { parseSections, type ReportSection, type SectionName } from './sections';
export { buildPrompt, MAX_PROMPT_TOKENS, type ClipTokenCounter, type GeneratorPrompt } from './prompt';
export { utf16ToCodePoint, codePointToUtf16 } from './offsets';
export {
  readRecords,
  guessRecordFormat,
  csvRow,
  RECORD_ID_PATTERN,
  type RecordFormat,
  type RecordLine,
} from './records';
export {
  anonymizeDataset,
  manifestLine,
  type AnonymizeDatasetSpec,
  type AnonymizeDatasetProgress,
  type AnonymizeDatasetResult,
  type RecordError,
} from './anonymize-dataset';
export { PhiTagger, DEFAULT_TAGGER_DIR, type PhiTaggerOptions } from './tagger';
