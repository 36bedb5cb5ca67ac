import type { JobRecord, JobRegistry, JobState } from '@medsyn/jobs';
import { common, jobs as jobsProto } from '@medsyn/proto';
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
    error: record.error
      ? {
          code: record.error.code,
          message: record.error.message,
          field: record.error.field ?? '',
          recordId: record.error.recordId ?? '',
        }
      : undefined,
    outputs: record.outputs,
  };
}

/**
 * medsyn.jobs.v1.JobService over a service's JobRegistry; the kit serves it in every service.
 * Errors (unknown job id, bad page token) are mapped to statuses by the kit's guard.
 */
export function jobService(registry: JobRegistry): jobsProto.JobServiceServer {
  return {
    getJob: (call, callback) => callback(null, { job: toProtoJob(registry.get(call.request.jobId)) }),
    listJobs: (call, callback) => {
      const page = registry.list(call.request.pageSize, call.request.pageToken);
      callback(null, { jobs: page.jobs.map(toProtoJob), nextPageToken: page.nextPageToken });
    },
    watchJob: async (call) => {
      for await (const record of registry.watch(call.request.jobId, callSignal(call)))
        call.write({ job: toProtoJob(record) });
      call.end();
    },
    cancelJob: async (call, callback) => callback(null, { job: toProtoJob(await registry.cancel(call.request.jobId)) }),
  };
}
