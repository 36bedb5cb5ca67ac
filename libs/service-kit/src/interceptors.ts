import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger, RpcMetrics } from '@medsyn/telemetry';

/** Services every caller may reach without a token: Kubernetes probes and tooling. */
const OPEN_SERVICES = ['/grpc.health.v1.Health/', '/grpc.reflection.'];

const statusName = (code: grpc.status) => grpc.status[code] ?? String(code);

/**
 * Counts, times and logs every RPC by method and final status. Logs carry the method, code and
 * duration only: never metadata values or payloads.
 */
export function telemetryInterceptor(metrics: RpcMetrics, logger: Logger): grpc.ServerInterceptor {
  return (descriptor, call) => {
    const method = descriptor.path;
    const started = process.hrtime.bigint();
    const done = metrics.start(method);
    return new grpc.ServerInterceptingCall(call, {
      sendStatus(status, next) {
        const code = statusName(status.code);
        done(code);
        const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
        const level = status.code === grpc.status.INTERNAL || status.code === grpc.status.UNKNOWN ? 'warn' : 'debug';
        logger[level]({ method, code, durationMs: Math.round(durationMs * 1000) / 1000 }, 'rpc');
        next(status);
      },
    });
  };
}

/** Requires `authorization: Bearer <token>` on every RPC except health and reflection. */
export function bearerAuthInterceptor(token: string): grpc.ServerInterceptor {
  const expected = Buffer.from(`Bearer ${token}`);
  const accepts = (value: grpc.MetadataValue | undefined) => {
    if (typeof value !== 'string') return false;
    const given = Buffer.from(value);
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  return (descriptor, call) => {
    if (OPEN_SERVICES.some((prefix) => descriptor.path.startsWith(prefix))) return new grpc.ServerInterceptingCall(call);
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next(
          new grpc.ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, nextMetadata) => {
              if (accepts(metadata.get('authorization')[0])) nextMetadata(metadata);
              else call.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: 'missing or invalid bearer token in the authorization metadata', metadata: new grpc.Metadata() });
            })
            .build(),
        );
      },
    });
  };
}
