// medsyn.common.v1: the messages every contract shares.
export { ArtifactRef, Lineage, Shard } from './gen/medsyn/common/v1/artifact';
export { ErrorDetail } from './gen/medsyn/common/v1/error';
export { Job, JobState, Progress, jobStateFromJSON, jobStateToJSON } from './gen/medsyn/common/v1/job';
