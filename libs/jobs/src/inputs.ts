import {
  ArtifactNotFoundError,
  DigestMismatchError,
  verifyArtifactRef,
  type ArtifactStore,
  type DigestClaim,
} from '@medsyn/artifact-store';
import { JobFailure } from './errors';

/** An input as its job was accepted: the request field that named it, its URI and claimed sha256, and the store key it resolved to. */
export interface JobInput extends DigestClaim {
  field: string;
  key?: string;
}

/**
 * Checks the inputs' digests again as the job runs: a job that waited in the queue, or resumes
 * after a restart, must not read bytes changed since the request was accepted. A mismatch fails the
 * job FAILED_PRECONDITION naming the field and URI, an input gone from the store NOT_FOUND.
 * `verify` checks one input (default: in `store`, at its key).
 */
export async function verifyJobInputs<T extends JobInput>(
  store: ArtifactStore,
  inputs: readonly T[],
  verify: (input: T) => Promise<void> = (input) => verifyArtifactRef(store, input, input.field, input.key),
): Promise<void> {
  for (const input of inputs) {
    try {
      await verify(input);
    } catch (error) {
      if (error instanceof DigestMismatchError) throw new JobFailure(error.message, 'FAILED_PRECONDITION', error.field);
      if (error instanceof ArtifactNotFoundError)
        throw new JobFailure(`${input.field}: ${input.uri} is no longer there`, 'NOT_FOUND', input.field);
      throw error;
    }
  }
}
