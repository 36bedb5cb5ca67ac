import * as grpc from '@grpc/grpc-js';
import { common, jobs } from '@medsyn/proto';

/**
 * The service spec with every job runner replaced by one that waits for shutdown: its jobs stay
 * unfinished in the store, as a deploy or a crash leaves them, and the next service started on
 * that store resumes them with its real runners.
 */
export function holdingJobs<S extends { jobRunners?: object }>(spec: S): S {
  const hold = (ctx: { signal: AbortSignal }) =>
    new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
  return { ...spec, jobRunners: Object.fromEntries(Object.keys(spec.jobRunners ?? {}).map((kind) => [kind, hold])) };
}

/** Every state of a job from now until it ends, as JobService.WatchJob streams them from the service at target. */
export function watchJobToEnd(target: string, jobId: string): Promise<common.Job[]> {
  const client = new jobs.JobServiceClient(target, grpc.credentials.createInsecure());
  const states: common.Job[] = [];
  return new Promise<common.Job[]>((resolve, reject) => {
    const watch = client.watchJob({ jobId });
    watch.on('data', (response: jobs.WatchJobResponse) => states.push(response.job!));
    watch.on('end', () => resolve(states));
    watch.on('error', reject);
  }).finally(() => client.close());
}
