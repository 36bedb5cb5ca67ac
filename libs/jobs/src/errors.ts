/** Base of job errors; `code` maps to a gRPC status in the service kit. */
export class JobError extends Error {
  constructor(
    message: string,
    readonly code: 'NOT_FOUND' | 'ALREADY_EXISTS' | 'INVALID_ARGUMENT' | 'FAILED_PRECONDITION',
    readonly field?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class JobNotFoundError extends JobError {
  constructor(jobId: string) {
    super(`job ${JSON.stringify(jobId)} not found`, 'NOT_FOUND', 'job_id');
  }
}

export class JobConflictError extends JobError {
  constructor(requestId: string) {
    super(
      `request_id ${JSON.stringify(requestId)} was already used with different parameters`,
      'ALREADY_EXISTS',
      'request_id',
    );
  }
}

/** Thrown by a runner to fail its job with a code and the field or record at fault. */
export class JobFailure extends Error {
  constructor(
    message: string,
    readonly code = 'INTERNAL',
    readonly field?: string,
    readonly recordId?: string,
  ) {
    super(message);
    this.name = 'JobFailure';
  }
}
