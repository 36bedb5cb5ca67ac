import { FileArtifactStore } from '@medsyn/artifact-store';
import { makeTempDir } from '@medsyn/testing';
import { JobRegistry, type JobRecord } from '../src';

const tmp = makeTempDir('job-counts');
afterAll(() => tmp.remove());

describe('JobRegistry.counts', () => {
  it('counts jobs by kind and state, every registered kind and state included', async () => {
    let release = () => {};
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const registry = new JobRegistry({
      store: new FileArtifactStore(`${tmp.dir}/store`),
      service: 'test',
      runners: { wait: () => blocked, quick: async () => {} },
    });
    const waiting = await registry.start({ requestId: 'a', kind: 'wait', spec: {} });
    const quick = await registry.start({ requestId: 'b', kind: 'quick', spec: {} });
    for await (const record of registry.watch(quick.jobId)) if ((record as JobRecord).state === 'succeeded') break;
    for await (const record of registry.watch(waiting.jobId)) if ((record as JobRecord).state === 'running') break;
    const nonZero = registry.counts().filter((c) => c.count > 0);
    expect(nonZero).toEqual([
      { kind: 'wait', state: 'running', count: 1 },
      { kind: 'quick', state: 'succeeded', count: 1 },
    ]);
    expect(registry.counts()).toHaveLength(2 * 5);
    release();
    await registry.close();
  });
});
