export * from './config';
export { runPipeline, PipelineStageError, type PipelineEvent, type PipelineResult } from './run';
export { startLocalServices, waitForJob, connect, channelSecurity, unary, JobFailedError, type Endpoints, type LocalServices } from './services';
export { ContentHasher, stageKey } from './content';
export { renderPipelineReport, type GridPair } from './report';
