import pino from 'pino';

export type Logger = pino.Logger;

/**
 * Structured JSON logs on stdout, one object per line with `service`. Callers log ids, counts,
 * codes and durations only: request payloads (report text, prompts, images) never go to logs.
 */
export function createLogger(service: string, level = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    { base: { service }, level, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination(1),
  );
}
