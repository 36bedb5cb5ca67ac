export * from './config';
export { runPipeline, PipelineStageError, type PipelineEvent, type PipelineResult } from './run';
export { startLocalServices, waitForJob, connect, channelSecurity, clientSecurity, unary, JobFailedError, type ClientSecurity, type Endpoints, type LocalServices } from './services';
export { ContentHasher, stageKey } from './content';
export { renderPipelineReport, pretrainingArms, incomparable, type GridPair, type PretrainingArm } from './report';
