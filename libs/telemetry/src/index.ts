export { createMetricsRegistry, metricPrefix, type MetricsRegistry } from './registry';
export { startMetricsServer, type MetricsServer } from './metrics-server';
export { RpcMetrics } from './rpc-metrics';
export { registerJobGauge, type JobCount } from './job-metrics';
export { GpuSampler, parseNvidiaSmiCsv, type GpuReading, type GpuSamplerOptions } from './gpu-sampler';
export { createLogger, type Logger } from './logger';
