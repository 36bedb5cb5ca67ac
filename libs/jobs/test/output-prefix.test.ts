import { setTimeout as sleep } from 'node:timers/promises';
import { FileArtifactStore } from '@medsyn/artifact-store';
import { makeTempDir } from '@medsyn/testing';
import { JobRegistry, validateOutputPrefix, type JobContext, type JobRecord, type JobRunner } from '../src';

const tmp = makeTempDir('jobs-prefix');
afterAll(() => tmp.remove());

let storeCount = 0;
const newStore = () => new FileArtifactStore(`${tmp.dir}/store-${storeCount++}`);

/** Runs until released (or aborted). */
function gated() {
  const release: Array<() => void> = [];
  const runner: JobRunner = (ctx: JobContext) =>
    new Promise<void>((resolve) => {
      if (ctx.signal.aborted) return resolve();
      release.push(resolve);
      ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  return { runner, releaseAll: () => release.splice(0).forEach((r) => r()) };
}

async function until(registry: JobRegistry, jobId: string, done: (r: JobRecord) => boolean): Promise<JobRecord> {
  for await (const record of registry.watch(jobId)) if (done(record)) return record;
  return registry.get(jobId);
}

describe('output prefixes', () => {
  it.each([
    ['out', /must end with "\/"/],
    ['/abs/out/', /relative/],
    ['a/../b/', /"\.\."/],
    ['../up/', /"\.\."/],
    ['a//b/', /empty segments/],
    ['./a/', /"\.\."/],
    ['jobs/anonymizer/', /reserved/],
    ['jobs/', /reserved/],
    ['a\\b/', /control characters/],
  ])('refuses %j as INVALID_ARGUMENT naming output_prefix', (prefix, message) => {
    expect(() => validateOutputPrefix(prefix)).toThrow(
      expect.objectContaining({
        code: 'INVALID_ARGUMENT',
        field: 'output_prefix',
        message: expect.stringMatching(message),
      }),
    );
  });

  it('accepts a relative prefix ending in "/"', () => {
    expect(() => validateOutputPrefix('anonymizer/run-1/')).not.toThrow();
    expect(() => validateOutputPrefix('myjobs/x/')).not.toThrow();
  });

  it('refuses at start, before any job exists', async () => {
    const registry = new JobRegistry({ store: newStore(), service: 'test', runners: { run: gated().runner } });
    await expect(
      registry.start({ requestId: 'a', kind: 'run', spec: {}, outputPrefix: 'jobs/test/' }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'output_prefix' });
    expect(registry.list().jobs).toHaveLength(0);
  });

  it('gives a prefix to the first job: another request with other parameters is refused, the same request re-attaches', async () => {
    const { runner, releaseAll } = gated();
    const store = newStore();
    const registry = new JobRegistry({ store, service: 'test', runners: { run: runner } });
    const a = await registry.start({ requestId: 'a', kind: 'run', spec: { input: 1 }, outputPrefix: 'out/' });
    await expect(
      registry.start({ requestId: 'b', kind: 'run', spec: { input: 2 }, outputPrefix: 'out/' }),
    ).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', field: 'output_prefix' });
    expect(
      (await registry.start({ requestId: 'a', kind: 'run', spec: { input: 1 }, outputPrefix: 'out/' })).jobId,
    ).toBe(a.jobId);
    releaseAll();
    await until(registry, a.jobId, (r) => r.state === 'succeeded');
    // Still owned after the job ended, by another service on the same store, and after a restart.
    const other = new JobRegistry({ store, service: 'other', runners: { run: runner } });
    await expect(
      other.start({ requestId: 'c', kind: 'run', spec: { input: 3 }, outputPrefix: 'out/' }),
    ).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', field: 'output_prefix' });
    await registry.close();
    const restarted = new JobRegistry({ store, service: 'test', runners: { run: runner } });
    await restarted.load();
    expect(
      (await restarted.start({ requestId: 'a', kind: 'run', spec: { input: 1 }, outputPrefix: 'out/' })).jobId,
    ).toBe(a.jobId);
    await expect(
      restarted.start({ requestId: 'b', kind: 'run', spec: { input: 2 }, outputPrefix: 'out/' }),
    ).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    // The claim itself is not loaded as a job.
    expect(restarted.list().jobs.map((j) => j.jobId)).toEqual([a.jobId]);
  });

  it('refuses the second of two concurrent starts with other parameters on one prefix', async () => {
    const { runner, releaseAll } = gated();
    const registry = new JobRegistry({ store: newStore(), service: 'test', runners: { run: runner } });
    const results = await Promise.allSettled([
      registry.start({ requestId: 'a', kind: 'run', spec: { input: 1 }, outputPrefix: 'same/' }),
      registry.start({ requestId: 'b', kind: 'run', spec: { input: 2 }, outputPrefix: 'same/' }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    releaseAll();
    await registry.close();
  });

  it('gives a prefix to exactly one of two replicas on one store racing to start jobs with other parameters on it', async () => {
    const { runner, releaseAll } = gated();
    const root = `${tmp.dir}/store-${storeCount++}`;
    // Two processes: a registry and a store client each, sharing only the store's folder.
    const [a, b] = ['a', 'b'].map(
      () => new JobRegistry({ store: new FileArtifactStore(root), service: 'test', runners: { run: runner } }),
    );
    for (let round = 0; round < 50; round++) {
      const outputPrefix = `race/${round}/`;
      const results = await Promise.allSettled([
        a!.start({ requestId: `a-${round}`, kind: 'run', spec: { replica: 'a' }, outputPrefix }),
        b!.start({ requestId: `b-${round}`, kind: 'run', spec: { replica: 'b' }, outputPrefix }),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      expect(results.find((r) => r.status === 'rejected')).toMatchObject({
        reason: { code: 'FAILED_PRECONDITION', field: 'output_prefix' },
      });
    }
    expect(a!.list(1000).jobs.length + b!.list(1000).jobs.length).toBe(50);
    releaseAll();
    await Promise.all([a!.close(), b!.close()]);
  });
});

describe('job concurrency limit', () => {
  it('runs at most maxRunning jobs; the others wait queued and start as slots free', async () => {
    const { runner, releaseAll } = gated();
    const registry = new JobRegistry({ store: newStore(), service: 'test', runners: { run: runner }, maxRunning: 2 });
    const jobs = await Promise.all(
      ['a', 'b', 'c'].map((id) => registry.start({ requestId: id, kind: 'run', spec: { id } })),
    );
    const states = () => jobs.map((j) => registry.get(j.jobId).state);
    while (states().filter((s) => s === 'running').length < 2) await sleep(5);
    await sleep(30);
    expect(states().sort()).toEqual(['queued', 'running', 'running']);
    const waiting = jobs.find((j) => registry.get(j.jobId).state === 'queued')!;
    releaseAll();
    await until(registry, waiting.jobId, (r) => r.state === 'running');
    releaseAll();
    await until(registry, waiting.jobId, (r) => r.state === 'succeeded');
    expect(states()).toEqual(['succeeded', 'succeeded', 'succeeded']);
  });

  it('cancels a waiting job without it ever running, and resumes a waiting job after a restart', async () => {
    const { runner, releaseAll } = gated();
    const store = newStore();
    const registry = new JobRegistry({ store, service: 'test', runners: { run: runner }, maxRunning: 1 });
    const first = await registry.start({ requestId: 'a', kind: 'run', spec: {} });
    const second = await registry.start({ requestId: 'b', kind: 'run', spec: {} });
    const third = await registry.start({ requestId: 'c', kind: 'run', spec: {} });
    await until(registry, first.jobId, (r) => r.state === 'running');
    expect((await registry.cancel(second.jobId)).state).toBe('cancelled');
    await registry.close();
    expect(registry.get(third.jobId).state).toBe('queued');
    const restarted = new JobRegistry({ store, service: 'test', runners: { run: runner }, maxRunning: 1 });
    await restarted.load();
    await until(restarted, first.jobId, (r) => r.state === 'running');
    releaseAll();
    await until(restarted, third.jobId, (r) => r.state === 'running');
    releaseAll();
    expect((await until(restarted, third.jobId, (r) => r.state === 'succeeded')).state).toBe('succeeded');
    expect(restarted.get(second.jobId).state).toBe('cancelled');
  });
});
