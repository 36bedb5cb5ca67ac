import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const bin = join(__dirname, '..', 'bin', 'medsyn.js');

describe('medsyn', () => {
  it('prints its usage with --help and exits 0', () => {
    const run = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/Usage: medsyn/);
  });

  // dist/ exists once built (CI builds before it tests); an installed CLI without tsx runs it.
  (existsSync(join(__dirname, '..', 'dist', 'main.js')) ? it : it.skip)('runs from dist/ as built', () => {
    const env = { ...process.env, MEDSYN_CLI_DIST: '1' };
    const run = spawnSync(process.execPath, [bin, 'evaluate', '--config', 'no-such.yaml'], { encoding: 'utf8', env });
    expect(run.status).toBe(1);
    expect(run.stderr).toBe('medsyn: config not found: no-such.yaml\n');
  });

  it('exits 2 with an error line on a command it does not know', () => {
    const run = spawnSync(process.execPath, [bin, 'no-such-command'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/^error: /m);
  });
});
