import type * as grpc from '@grpc/grpc-js';
import type { JobRecord, JobRegistry, JobState } from '@medsyn/jobs';
import { common } from '@medsyn/proto';
import { callSignal } from './calls';

const STATES: Record<JobState, common.JobState> = {
  queued: common.JobState.JOB_STATE_QUEUED,
  running: common.JobState.JOB_STATE_RUNNING,
  succeeded: common.JobState.JOB_STATE_SUCCEEDED,
  failed: common.JobState.JOB_STATE_FAILED,
  cancelled: common.JobState.JOB_STATE_CANCELLED,
};

/** A job record in its contract form (medsyn.common.v1.Job). */
export function toProtoJob(record: JobRecord): common.Job {
  return {
    jobId: record.jobId,
    requestId: record.requestId,
    kind: record.kind,
    state: STATES[record.state],
    progress: record.progress,
    createTime: new Date(record.createTime),
    updateTime: new Date(record.updateTime),
    endTime: record.endTime ? new Date(record.endTime) : undefined,
    error: record.error ? { code: record.error.code, message: record.error.message, field: record.error.field ?? '', recordId: record.error.recordId ?? '' } : undefined,
    outputs: record.outputs,
  };
}

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => Promise<void>;

/**
 * GetJob, ListJobs, WatchJob and CancelJob for any service: every contract declares them with
 * the same shapes (a job id in, a common.v1.Job out), backed by the service's JobRegistry.
 */
export function jobRpcs(jobs: JobRegistry) {
  const getJob: Unary<{ jobId: string }, { job: common.Job }> = async (call, callback) => {
    callback(null, { job: toProtoJob(jobs.get(call.request.jobId)) });
  };
  const listJobs: Unary<{ pageSize: number; pageToken: string }, { jobs: common.Job[]; nextPageToken: string }> = async (call, callback) => {
    const page = jobs.list(call.request.pageSize, call.request.pageToken);
    callback(null, { jobs: page.jobs.map(toProtoJob), nextPageToken: page.nextPageToken });
  };
  const watchJob = async (call: grpc.ServerWritableStream<{ jobId: string }, { job: common.Job }>) => {
    for await (const record of jobs.watch(call.request.jobId, callSignal(call))) call.write({ job: toProtoJob(record) });
    call.end();
  };
  const cancelJob: Unary<{ jobId: string }, { job: common.Job }> = async (call, callback) => {
    callback(null, { job: toProtoJob(await jobs.cancel(call.request.jobId)) });
  };
  return { getJob, listJobs, watchJob, cancelJob };
}
