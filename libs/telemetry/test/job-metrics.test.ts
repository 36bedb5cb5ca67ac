import { promtoolCheckMetrics } from '@medsyn/testing';
import { createMetricsRegistry, registerJobGauge, type JobCount } from '../src';

describe('registerJobGauge', () => {
  it('exports the job table as read at scrape time, in a form promtool accepts', async () => {
    const metrics = createMetricsRegistry('synthesizer');
    let table: JobCount[] = [{ kind: 'synthesize_dataset', state: 'running', count: 2 }];
    registerJobGauge(metrics, () => table);
    expect(await metrics.registry.metrics()).toContain(
      'medsyn_synthesizer_jobs{kind="synthesize_dataset",state="running"} 2',
    );
    table = [{ kind: 'synthesize_dataset', state: 'succeeded', count: 3 }];
    const text = await metrics.registry.metrics();
    expect(text).toContain('medsyn_synthesizer_jobs{kind="synthesize_dataset",state="succeeded"} 3');
    expect(text).not.toContain('state="running"');
    expect(promtoolCheckMetrics(text)).toBe('');
  });
});
