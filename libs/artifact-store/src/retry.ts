import { setTimeout as sleep } from 'node:timers/promises';
import { ArtifactStoreError, StoreUnavailableError } from './errors';

export interface RetryPolicy {
  /** Attempts in all, including the first. */
  attempts: number;
  /** Delay before the second attempt; doubles each time, with jitter. */
  initialDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 4, initialDelayMs: 100, maxDelayMs: 2000 };

const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
]);
// ConditionalRequestConflict (409): S3 was finishing another conditional write to the key; its docs say retry.
const TRANSIENT_S3_CODES = new Set([
  'SlowDown',
  'InternalError',
  'ServiceUnavailable',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'ConditionalRequestConflict',
]);

/** Network failures and S3 throttling/5xx are worth retrying; everything else is permanent. */
export function isTransient(error: unknown): boolean {
  if (error instanceof ArtifactStoreError) return !error.permanent;
  const e = error as { code?: string; statusCode?: number; cause?: unknown };
  if (e?.code && (TRANSIENT_NETWORK_CODES.has(e.code) || TRANSIENT_S3_CODES.has(e.code))) return true;
  if (typeof e?.statusCode === 'number' && e.statusCode >= 500) return true;
  return false;
}

/**
 * Runs operation, retrying transient failures with exponential backoff and jitter. When retries
 * run out the last error is wrapped in StoreUnavailableError naming what was attempted.
 */
export async function withRetry<T>(
  what: string,
  operation: () => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY,
): Promise<T> {
  let delay = policy.initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (attempt >= policy.attempts) {
        throw new StoreUnavailableError(`${what} failed after ${attempt} attempts: ${describe(error)}`, {
          cause: error,
        });
      }
      await sleep(delay * (0.5 + Math.random()));
      delay = Math.min(delay * 2, policy.maxDelayMs);
    }
  }
}

/** A short description of a backend error (never includes object contents). */
export function describe(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return [e?.code, e?.message].filter(Boolean).join(': ') || String(error);
}
