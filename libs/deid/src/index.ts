export * from './types';
export { RuleDetector, combineDetectors, mergeSpans } from './detector';
export { RULES, type Rule } from './rules';
