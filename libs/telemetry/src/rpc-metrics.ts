import { Counter, Gauge, Histogram } from 'prom-client';
import type { MetricsRegistry } from './registry';

/**
 * Per-method request metrics of a service's RPC server. Labels are bounded: the method name
 * (from the service's contract) and the status code name, never a request value.
 */
export class RpcMetrics {
  private readonly requests: Counter<'method' | 'code'>;
  private readonly duration: Histogram<'method'>;
  private readonly inFlight: Gauge<'method'>;

  constructor({ prefix, registry }: MetricsRegistry) {
    this.requests = new Counter({
      name: `${prefix}grpc_requests_total`,
      help: 'RPCs completed, by method and gRPC status code.',
      labelNames: ['method', 'code'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: `${prefix}grpc_request_duration_seconds`,
      help: 'Time from receiving an RPC to sending its status.',
      labelNames: ['method'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600],
      registers: [registry],
    });
    this.inFlight = new Gauge({
      name: `${prefix}grpc_requests_in_flight`,
      help: 'RPCs started and not yet finished.',
      labelNames: ['method'],
      registers: [registry],
    });
  }

  /** Call when an RPC arrives; call the returned function once, with its final status code name. */
  start(method: string): (code: string) => void {
    this.inFlight.inc({ method });
    const stopTimer = this.duration.startTimer({ method });
    let done = false;
    return (code) => {
      if (done) return;
      done = true;
      this.inFlight.dec({ method });
      stopTimer();
      this.requests.inc({ method, code });
    };
  }
}
