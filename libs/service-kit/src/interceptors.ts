import { timingSafeEqual } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { Logger, RpcMetrics } from '@medsyn/telemetry';
import { endedByDeadline } from './calls';

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
    let finished = false;
    const finish = (code: grpc.status) => {
      if (finished) return;
      finished = true;
      done(statusName(code));
      const durationMs = Math.round(Number(process.hrtime.bigint() - started) / 1e3) / 1e3;
      const level = code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN ? 'warn' : 'debug';
      logger[level]({ method, code: statusName(code), durationMs }, 'rpc');
    };
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        // A call that the client cancels, or whose deadline passes, never sends a status
        // through the interceptors: grpc-js answers a passed deadline itself, then cancels the
        // call. Count it here, before the handler hears of the cancel (our listener runs before
        // the next one), so the count is in when the handler's work stops.
        next(
          new grpc.ServerListenerBuilder()
            .withOnCancel(() => finish(endedByDeadline(call) ? grpc.status.DEADLINE_EXCEEDED : grpc.status.CANCELLED))
            .build(),
        );
      },
      sendStatus(status, next) {
        finish(status.code);
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
    if (OPEN_SERVICES.some((prefix) => descriptor.path.startsWith(prefix)))
      return new grpc.ServerInterceptingCall(call);
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next(
          new grpc.ServerListenerBuilder()
            .withOnReceiveMetadata((metadata, nextMetadata) => {
              if (accepts(metadata.get('authorization')[0])) nextMetadata(metadata);
              else
                call.sendStatus({
                  code: grpc.status.UNAUTHENTICATED,
                  details: 'missing or invalid bearer token in the authorization metadata',
                  metadata: new grpc.Metadata(),
                });
            })
            .build(),
        );
      },
    });
  };
}
