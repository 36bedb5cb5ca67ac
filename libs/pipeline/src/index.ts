export * from './config';
export { runPipeline, pretrainingRuns, type PipelineResult } from './run';
export {
  PipelineStageError,
  verificationSummary,
  type PipelineEvent,
  type StageRecord,
  type StageVerification,
} from './pipeline-run';
export {
  startLocalServices,
  waitForJob,
  connect,
  channelSecurity,
  clientSecurity,
  unary,
  JobFailedError,
  type ClientSecurity,
  type Endpoints,
  type LocalServices,
} from './services';
export { ContentHasher, stageKey } from './content';
export {
  renderPipelineReport,
  pretrainingArms,
  incomparable,
  binomialTail,
  pooledMetrics,
  pooledRatios,
  groupOf,
  type GridPair,
  type PretrainingArm,
  type PooledMetric,
  type PooledRatio,
} from './report';
export { checkResultsDoc, type ResultsFigure, type ResultsCheck } from './results-check';
export { renderComparisonTables } from './tables';
