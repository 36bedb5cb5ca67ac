export * from './types';
export { RuleDetector, combineDetectors, mergeSpans } from './detector';
export { RULES, type Rule } from './rules';
export { Anonymizer, InvalidReportError, sanitize, type AnonymizedReport, type AnonymizerOptions, type ReportInput } from './anonymizer';
export { SurrogateGenerator, shiftDate, parseDate } from './surrogates';
export { parseSections, type ReportSection, type SectionName } from './sections';
export { buildPrompt, MAX_PROMPT_TOKENS, type ClipTokenCounter, type GeneratorPrompt } from './prompt';
export { utf16ToCodePoint, codePointToUtf16 } from './offsets';
export { readRecords, guessRecordFormat, type RecordFormat, type RecordLine } from './records';
