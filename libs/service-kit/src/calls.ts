import * as grpc from '@grpc/grpc-js';
import {
  ArtifactNotFoundError,
  ArtifactStoreError,
  DigestMismatchError,
  InvalidKeyError,
  MalformedDigestError,
} from '@medsyn/artifact-store';
import { JobError } from '@medsyn/jobs';

/** Anything with the cancellation surface of a grpc-js server call. */
type ServerCall = {
  on(event: 'cancelled', listener: () => void): unknown;
  getDeadline(): grpc.Deadline;
  cancelled: boolean;
};

/**
 * How close to its deadline a cancel counts as the deadline: the client gives up at its deadline,
 * a network latency before ours, so a cancel that close to the deadline is the deadline.
 */
const DEADLINE_SLACK_MS = 250;

/** Whether a call that ended without a status of its own ended because its deadline passed. */
export function endedByDeadline(call: Pick<ServerCall, 'getDeadline'>): boolean {
  const deadline = call.getDeadline();
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return at - Date.now() <= DEADLINE_SLACK_MS;
}

/**
 * An AbortSignal for a server call: aborted when the client cancels, disconnects, or the call's
 * deadline passes. Long handlers pass it down so work stops when nobody waits for it.
 *
 * The deadline is grpc-js's own: when it passes, grpc-js answers DEADLINE_EXCEEDED and then
 * cancels the call, so the call's status is settled (and counted by the telemetry interceptor)
 * before the handler hears of it. A timer of our own would race grpc-js's: a handler woken first
 * answers before the deadline status is sent, and the call is counted with the handler's status.
 */
export function callSignal(call: ServerCall): AbortSignal {
  const controller = new AbortController();
  const abort = () => controller.abort(endedByDeadline(call) ? 'deadline exceeded' : 'cancelled');
  if (call.cancelled) abort();
  else call.on('cancelled', abort);
  return controller.signal;
}

/** A gRPC error with a status and a message that names the field at fault. */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

/** INVALID_ARGUMENT naming the request field, e.g. invalidArgument('params.guidance_scale', 'must be >= 0'). */
export function invalidArgument(field: string, problem: string): RpcError {
  return new RpcError(grpc.status.INVALID_ARGUMENT, `${field}: ${problem}`, field);
}

/** UNIMPLEMENTED for an RPC whose issue has not landed yet. */
export function notImplementedYet(method: string, issue: number): RpcError {
  return new RpcError(grpc.status.UNIMPLEMENTED, `${method} is not implemented yet (issue #${issue})`);
}

const JOB_CODES: Record<JobError['code'], grpc.status> = {
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
};

/**
 * Maps a domain error to a gRPC status. Known errors keep their (PHI-free) message; anything
 * else becomes INTERNAL with a generic message, because its text may carry request data.
 */
export function toServiceError(error: unknown): Partial<grpc.StatusObject> {
  if (error instanceof RpcError) return { code: error.code, details: error.message };
  if (error instanceof JobError) return { code: JOB_CODES[error.code], details: error.message };
  if (error instanceof ArtifactNotFoundError) return { code: grpc.status.NOT_FOUND, details: error.message };
  if (error instanceof InvalidKeyError || error instanceof MalformedDigestError)
    return { code: grpc.status.INVALID_ARGUMENT, details: error.message };
  // The request is fine; the store holds other bytes than it names, until someone puts them back.
  if (error instanceof DigestMismatchError) return { code: grpc.status.FAILED_PRECONDITION, details: error.message };
  if (error instanceof ArtifactStoreError) {
    return {
      code: error.permanent ? grpc.status.FAILED_PRECONDITION : grpc.status.UNAVAILABLE,
      details: error.message,
    };
  }
  return { code: grpc.status.INTERNAL, details: 'internal error' };
}

type Handler = (...args: never[]) => unknown;

/**
 * Wraps a service implementation so that a handler that throws or rejects answers with the
 * mapped status instead of crashing the process or hanging the call.
 */
export function guardImplementation<T extends object>(definition: grpc.ServiceDefinition, implementation: T): T {
  const guarded: Record<string, Handler> = {};
  for (const [name, method] of Object.entries(definition)) {
    const handler = (implementation as Record<string, Handler>)[name];
    if (!handler) throw new Error(`implementation lacks a handler for ${method.path}`);
    if (!method.responseStream && !method.requestStream) {
      guarded[name] = ((call: unknown, callback: grpc.sendUnaryData<unknown>) => {
        try {
          const result = (handler as (c: unknown, cb: grpc.sendUnaryData<unknown>) => unknown)(call, callback);
          if (result instanceof Promise) result.catch((error) => callback(toServiceError(error) as grpc.ServiceError));
        } catch (error) {
          callback(toServiceError(error) as grpc.ServiceError);
        }
      }) as Handler;
    } else {
      guarded[name] = ((call: grpc.ServerWritableStream<unknown, unknown>, callback?: grpc.sendUnaryData<unknown>) => {
        const fail = (error: unknown) => {
          const status = toServiceError(error) as grpc.ServiceError;
          if (callback) callback(status);
          else call.emit('error', status);
        };
        try {
          const result = (handler as (c: unknown, cb?: unknown) => unknown)(call, callback);
          if (result instanceof Promise) result.catch(fail);
        } catch (error) {
          fail(error);
        }
      }) as Handler;
    }
  }
  return guarded as T;
}
