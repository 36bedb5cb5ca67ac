import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';

const HealthClient = grpc.makeClientConstructor(healthService, 'grpc.health.v1.Health');

/**
 * Calls the standard grpc.health.v1.Health/Check (every medsyn service serves it through
 * service-kit, without the bearer token); resolves with the status name, e.g. SERVING.
 */
export function healthCheck(
  target: string,
  service = '',
  credentials = grpc.credentials.createInsecure(),
  metadata = new grpc.Metadata(),
): Promise<string> {
  // Reconnect quickly: a service that is still starting refuses the first connections.
  const client = new HealthClient(target, credentials, {
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 500,
  }) as grpc.Client & Record<string, CallableFunction>;
  return new Promise((resolve, reject) => {
    client.check(
      { service },
      metadata,
      { deadline: Date.now() + 5000 },
      (error: grpc.ServiceError | null, response: { status: string }) => {
        client.close();
        if (error) reject(error);
        else resolve(response.status);
      },
    );
  });
}
