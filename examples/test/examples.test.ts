import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, tsxLoaderArgs } from '@medsyn/testing';

describe('docs/training.md example', () => {
  it('trains, checkpoints, exports and serves a classifier', async () => {
    const tmp = makeTempDir('example');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [...tsxLoaderArgs(), path.join(__dirname, '..', 'train-classifier.ts')],
      {
        env: { ...process.env, MEDSYN_STORE: `file://${tmp.dir}` },
      },
    );
    tmp.remove();
    expect(stdout).toMatch(/checkpoint: file:\/\/.*checkpoint\.safetensors/);
    const accuracy = Number(/held-out accuracy of the exported model: ([\d.]+)%/.exec(stdout)![1]);
    expect(accuracy).toBeGreaterThanOrEqual(95);
  });
});
