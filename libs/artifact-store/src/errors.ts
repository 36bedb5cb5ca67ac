/** Base of every artifact-store error; `permanent` tells callers whether retrying can help. */
export class ArtifactStoreError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ArtifactNotFoundError extends ArtifactStoreError {
  constructor(readonly key: string) {
    super(`artifact not found: ${key}`, true);
  }
}

export class InvalidKeyError extends ArtifactStoreError {
  constructor(key: string, reason: string) {
    super(`invalid artifact key ${JSON.stringify(key)}: ${reason}`, true);
  }
}

/** The store URI or its credentials are wrong: fix the configuration. */
export class StoreConfigError extends ArtifactStoreError {
  constructor(message: string) {
    super(message, true);
  }
}

/** The backend could not be reached or refused the operation after retries. */
export class StoreUnavailableError extends ArtifactStoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, false, options);
  }
}
