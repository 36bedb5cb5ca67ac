import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const bin = join(__dirname, '..', 'bin', 'medsyn.js');

describe('medsyn', () => {
  it('prints its usage with --help and exits 0', () => {
    const run = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/Usage: medsyn/);
  });

  it('exits 2 with an error line on a command it does not know', () => {
    const run = spawnSync(process.execPath, [bin, 'no-such-command'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^error: /m);
  });
});
