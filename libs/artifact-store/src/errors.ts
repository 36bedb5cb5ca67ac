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

/** A reference's sha256 is not a digest at all: the caller's mistake, named by its field (`<field>.sha256` unless digestField says otherwise). */
export class MalformedDigestError extends ArtifactStoreError {
  constructor(
    readonly field: string,
    digestField = `${field}.sha256`,
  ) {
    super(`${digestField}: must be 64 lower-case hex characters (a sha256), or empty to skip the check`, true);
  }
}

/** The bytes at a reference's URI are not the ones its sha256 names (changed, or the wrong object). */
export class DigestMismatchError extends ArtifactStoreError {
  constructor(
    readonly field: string,
    readonly uri: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(`${field}: sha256 mismatch for ${uri} (expected ${expected}, found ${found})`, true);
  }
}
