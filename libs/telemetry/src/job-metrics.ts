import { Gauge } from 'prom-client';
import type { MetricsRegistry } from './registry';

/** One row of a service's job table: how many jobs of a kind are in a state. */
export interface JobCount {
  kind: string;
  state: string;
  count: number;
}

/**
 * `<prefix>jobs{kind, state}`: the service's jobs by kind and state, read from `read` at every
 * scrape. Queued and running jobs are its queue depth (dashboards) and tell when a GPU should be
 * busy (alert rules).
 */
export function registerJobGauge(
  { prefix, registry }: MetricsRegistry,
  read: () => JobCount[],
): Gauge<'kind' | 'state'> {
  return new Gauge({
    name: `${prefix}jobs`,
    help: 'Jobs this service holds, by kind and state.',
    labelNames: ['kind', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { kind, state, count } of read()) this.set({ kind, state }, count);
    },
  });
}
