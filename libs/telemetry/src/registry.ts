import { Registry, collectDefaultMetrics } from 'prom-client';

/** A service's own prom-client registry; its metric names start with metricPrefix(service). */
export interface MetricsRegistry {
  readonly service: string;
  readonly prefix: string;
  readonly registry: Registry;
}

/** `medsyn_<service>_`, the prefix of every metric a service defines (Prometheus conventions). */
export function metricPrefix(service: string): string {
  if (!/^[a-z][a-z0-9_]*$/.test(service))
    throw new Error(`service name ${JSON.stringify(service)} must be lower snake case`);
  return `medsyn_${service}_`;
}

/** A fresh registry per service with Node's default process metrics (CPU, memory, event loop, GC). */
export function createMetricsRegistry(service: string): MetricsRegistry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client exports these gauges with a `_total` suffix, which Prometheus reserves for
  // counters (promtool rejects them); the per-type `nodejs_active_*` gauges carry the same data.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
  return { service, prefix: metricPrefix(service), registry };
}
