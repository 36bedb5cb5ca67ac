export * from './config';
export { runPipeline, PipelineStageError, type PipelineEvent, type PipelineResult } from './run';
export { startLocalServices, waitForJob, JobFailedError, type Endpoints, type LocalServices } from './services';
export { renderPipelineReport, type GridPair } from './report';
