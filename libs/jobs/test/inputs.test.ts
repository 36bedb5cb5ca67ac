import { FileArtifactStore, sha256Hex } from '@medsyn/artifact-store';
import { makeTempDir } from '@medsyn/testing';
import { JobFailure, verifyJobInputs } from '../src';

const tmp = makeTempDir('job-inputs');
afterAll(() => tmp.remove());

describe('verifyJobInputs', () => {
  it('passes inputs that still hold their bytes, and fails the job naming field and URI once they changed or went', async () => {
    const store = new FileArtifactStore(`${tmp.dir}/store`);
    const ref = await store.put('in/pairs.jsonl', '{"id":"1"}\n');
    const input = { field: 'config.data.real_pairs[0]', uri: ref.uri, sha256: ref.sha256, key: 'in/pairs.jsonl' };
    await verifyJobInputs(store, [input]);

    await store.put('in/pairs.jsonl', '{"id":"2"}\n');
    const found = sha256Hex('{"id":"2"}\n');
    const changed = await verifyJobInputs(store, [input]).catch((error: unknown) => error);
    expect(changed).toBeInstanceOf(JobFailure);
    expect(changed).toMatchObject({
      code: 'FAILED_PRECONDITION',
      field: input.field,
      message: `${input.field}: sha256 mismatch for ${ref.uri} (expected ${ref.sha256}, found ${found})`,
    });

    await store.delete('in/pairs.jsonl');
    await expect(verifyJobInputs(store, [input])).rejects.toMatchObject({
      code: 'NOT_FOUND',
      field: input.field,
      message: `${input.field}: ${ref.uri} is no longer there`,
    });
  });
});
