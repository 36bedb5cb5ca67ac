export {
  WordPieceTokenizer,
  WordPieceError,
  SPECIAL_TOKENS,
  type WordPieceOptions,
  type TrainVocabularyOptions,
  type EncodedBatch,
} from './wordpiece';
