export {
  DATASET_FORMAT,
  UNSPECIFIED,
  checkCardFacts,
  renderReadme,
  shardPattern,
  type CardFacts,
  type DatasetCard,
  type ShardEntry,
} from './card';
export { DatasetBundleError, DatasetExportError } from './errors';
export {
  DEFAULT_SHARD_SIZE,
  exportDataset,
  imageExtension,
  sampleKey,
  type ExportDatasetOptions,
  type ExportDatasetResult,
  type SampleMetadata,
} from './export';
export {
  MEMBER_SIZE_LIMITS,
  importDataset,
  readDatasetCard,
  type ImportDatasetOptions,
  type ImportDatasetResult,
  type MemberSizeLimits,
} from './import';
export {
  PairManifestError,
  parsePairLine,
  readPairLines,
  readPairManifests,
  type LoadedPairs,
  type PairLine,
  type PairManifestList,
  type PairRecord,
  type PairSource,
  type ReadPairLine,
  type SkippedRecord,
} from './pair-manifest';
