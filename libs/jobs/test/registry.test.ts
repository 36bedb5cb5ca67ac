import { setTimeout as sleep } from 'node:timers/promises';
import { FileArtifactStore, getBuffer } from '@medsyn/artifact-store';
import { makeTempDir } from '@medsyn/testing';
import {
  JobConflictError,
  JobFailure,
  JobNotFoundError,
  JobRegistry,
  type JobContext,
  type JobRecord,
  type JobRunner,
} from '../src';

const tmp = makeTempDir('jobs');
afterAll(() => tmp.remove());

let storeCount = 0;
const newStore = () => new FileArtifactStore(`${tmp.dir}/store-${storeCount++}`);

/** A runner that counts to spec.steps, one step per 10 ms, reporting progress; stops when aborted. */
const counting: JobRunner = async (ctx: JobContext) => {
  const { steps, startAt = 0 } = ctx.spec as { steps: number; startAt?: number };
  for (let i = startAt; i < steps; i++) {
    if (ctx.signal.aborted) return;
    await sleep(10);
    ctx.report({ completed: i + 1, total: steps, unit: 'steps', metrics: { loss: 1 / (i + 1) } });
  }
};

async function until(registry: JobRegistry, jobId: string, done: (r: JobRecord) => boolean): Promise<JobRecord> {
  for await (const record of registry.watch(jobId)) if (done(record)) return record;
  return registry.get(jobId);
}

describe('JobRegistry', () => {
  it('returns the same job when started twice with the same request id', async () => {
    const registry = new JobRegistry({ store: newStore(), service: 'test', runners: { count: counting } });
    const a = await registry.start({ requestId: 'req-1', kind: 'count', spec: { steps: 3 } });
    const b = await registry.start({ requestId: 'req-1', kind: 'count', spec: { steps: 3 } });
    expect(b.jobId).toBe(a.jobId);
    expect(registry.list().jobs).toHaveLength(1);
    await until(registry, a.jobId, (r) => r.state === 'succeeded');
    await registry.close();
  });

  it('refuses a request id reused with different parameters', async () => {
    const registry = new JobRegistry({ store: newStore(), service: 'test', runners: { count: counting } });
    await registry.start({ requestId: 'req-1', kind: 'count', spec: { steps: 3 } });
    await expect(registry.start({ requestId: 'req-1', kind: 'count', spec: { steps: 4 } })).rejects.toThrow(
      JobConflictError,
    );
    await registry.close();
  });

  it('rejects a missing request id and unknown kinds, naming the field', async () => {
    const registry = new JobRegistry({ store: newStore(), service: 'test', runners: { count: counting } });
    await expect(registry.start({ requestId: '', kind: 'count', spec: {} })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'request_id',
    });
    await expect(registry.start({ requestId: 'x', kind: 'nope', spec: {} })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      field: 'kind',
    });
    expect(() => registry.get('missing')).toThrow(JobNotFoundError);
  });

  it('streams progress to watchers until the job succeeds', async () => {
    const registry = new JobRegistry({ store: newStore(), service: 'test', runners: { count: counting } });
    const job = await registry.start({ requestId: 'r', kind: 'count', spec: { steps: 5 } });
    const seen: JobRecord[] = [];
    for await (const record of registry.watch(job.jobId)) seen.push(record);
    expect(seen[0]!.state).toBe('queued');
    expect(seen.map((r) => r.progress.completed)).toEqual(expect.arrayContaining([1, 2, 3, 4, 5]));
    const last = seen.at(-1)!;
    expect(last).toMatchObject({
      state: 'succeeded',
      progress: { completed: 5, total: 5, unit: 'steps', metrics: { loss: 0.2 } },
    });
    expect(last.endTime).toBeDefined();
    await registry.close();
  });

  it('cancels a running job and keeps it cancelled', async () => {
    let sawAbort = false;
    const registry = new JobRegistry({
      store: newStore(),
      service: 'test',
      runners: {
        wait: async (ctx) => {
          await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
          sawAbort = true;
        },
      },
    });
    const job = await registry.start({ requestId: 'r', kind: 'wait', spec: {} });
    await until(registry, job.jobId, (r) => r.state === 'running');
    expect((await registry.cancel(job.jobId)).state).toBe('cancelled');
    expect(sawAbort).toBe(true);
    expect((await registry.cancel(job.jobId)).state).toBe('cancelled');
    await registry.close();
  });

  it("reports failures with the runner's code and never an unexpected error's text", async () => {
    const registry = new JobRegistry({
      store: newStore(),
      service: 'test',
      runners: {
        bad: async () => {
          throw new JobFailure('record 17 could not be decoded', 'DECODE_FAILED', 'input', 'rec-17');
        },
        crash: async () => {
          throw new Error('cannot parse "John Smith, MRN 123456"');
        },
      },
    });
    const bad = await registry.start({ requestId: 'a', kind: 'bad', spec: {} });
    const crash = await registry.start({ requestId: 'b', kind: 'crash', spec: {} });
    expect((await until(registry, bad.jobId, (r) => r.state === 'failed')).error).toEqual({
      code: 'DECODE_FAILED',
      message: 'record 17 could not be decoded',
      field: 'input',
      recordId: 'rec-17',
    });
    const crashed = await until(registry, crash.jobId, (r) => r.state === 'failed');
    expect(crashed.error!.code).toBe('INTERNAL');
    expect(JSON.stringify(crashed)).not.toMatch(/Smith|123456/);
    await registry.close();
  });

  it('resumes a job left running by a shutdown when the service starts again', async () => {
    const store = newStore();
    const resumedFrom: number[] = [];
    // Stands in for a checkpoint: where each job got to, as a real runner would read it back.
    const checkpoints = new Map<string, number>();
    const resumable: JobRunner = async (ctx) => {
      const { steps } = ctx.spec as { steps: number };
      let i = checkpoints.get(ctx.jobId) ?? 0;
      resumedFrom.push(i);
      for (; i < steps; i++) {
        if (ctx.signal.aborted) return;
        await sleep(20);
        checkpoints.set(ctx.jobId, i + 1);
        ctx.report({ completed: i + 1, total: steps });
      }
    };
    const before = new JobRegistry({ store, service: 'test', runners: { count: resumable } });
    const job = await before.start({ requestId: 'long', kind: 'count', spec: { steps: 30 } });
    await until(before, job.jobId, (r) => r.progress.completed >= 3);
    await before.close();
    const persisted = JSON.parse((await getBuffer(store, `jobs/test/${job.jobId}.json`)).toString());
    expect(persisted.state).toBe('running');
    expect(persisted.progress.completed).toBeGreaterThanOrEqual(3);

    const after = new JobRegistry({ store, service: 'test', runners: { count: resumable } });
    await after.load();
    const done = await until(after, job.jobId, (r) => r.state === 'succeeded');
    expect(done.progress.completed).toBe(30);
    expect(resumedFrom[0]).toBe(0);
    expect(resumedFrom[1]).toBeGreaterThanOrEqual(3);
    await after.close();
  });

  it('fails a persisted unfinished job whose kind this version cannot run', async () => {
    const store = newStore();
    const before = new JobRegistry({ store, service: 'test', runners: { count: counting } });
    const job = await before.start({ requestId: 'r', kind: 'count', spec: { steps: 1000 } });
    await until(before, job.jobId, (r) => r.state === 'running');
    await before.close();
    const after = new JobRegistry({ store, service: 'test', runners: {} });
    await after.load();
    const record = await until(after, job.jobId, (r) => r.state === 'failed');
    expect(record.error!.code).toBe('UNAVAILABLE');
  });

  it('lists jobs newest first, a page at a time', async () => {
    const registry = new JobRegistry({ store: newStore(), service: 'test', runners: { count: counting } });
    for (let i = 0; i < 5; i++) {
      await registry.start({ requestId: `r${i}`, kind: 'count', spec: { steps: 1 } });
      await sleep(2);
    }
    const first = registry.list(2);
    const second = registry.list(2, first.nextPageToken);
    const third = registry.list(2, second.nextPageToken);
    expect([...first.jobs, ...second.jobs, ...third.jobs].map((j) => j.requestId)).toEqual([
      'r4',
      'r3',
      'r2',
      'r1',
      'r0',
    ]);
    expect(third.nextPageToken).toBe('');
    expect(() => registry.list(2, '%%%')).toThrow(/page_token/);
    await registry.close();
  });
});
