export {
  PhiTagger,
  DEFAULT_TAGGER_DIR,
  decodeSpans,
  type PhiTaggerOptions,
  type TaggerMeta,
  type Thresholds,
} from './phi-tagger';
export { buildTagger, TAGGER_CLASSES, DEFAULT_TAGGER_CONFIG, type TaggerConfig, type TaggerClass } from './model';
export { FeatureExtractor, FEATURE_SLOTS, FEATURE_VERSION, wordShape } from './features';
export { tokenize, type Token } from './tokens';
