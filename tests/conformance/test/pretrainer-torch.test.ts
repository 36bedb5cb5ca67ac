import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { startServiceProcess, type ServiceProcess } from '@medsyn/local-services';
import { makeTempDir, repoRoot, tsxLoaderArgs } from '@medsyn/testing';
import { conformanceChecks } from '../src';

// The swap the contracts promise: the PyTorch implementation of the pretrainer contract
// (services/pretrainer-torch, Python) passes the same checks as ours, alone and behind a token.
const tmp = makeTempDir('conformance-torch');
const TOKEN = 'conformance-torch-token-0123456789';
let plain: ServiceProcess;
let guarded: ServiceProcess;
/** What the plain one logs, to see it stop. */
const plainLog: string[] = [];

function startTorchPretrainer(env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Promise<ServiceProcess> {
  return startServiceProcess({
    name: 'PyTorch pretrainer',
    command: '/usr/bin/python3',
    args: ['-m', 'medsyn_pretrainer_torch.main'],
    cwd: path.join(repoRoot, 'services', 'pretrainer-torch'),
    env: {
      ...process.env,
      GRPC_HOST: '127.0.0.1',
      METRICS_HOST: '127.0.0.1',
      MEDSYN_STORE: `file://${tmp.dir}/store`,
      ...env,
    },
    onLine,
    readyTimeoutMs: 60_000,
  });
}

beforeAll(async () => {
  [plain, guarded] = await Promise.all([
    startTorchPretrainer({}, (line) => plainLog.push(line)),
    startTorchPretrainer({ GRPC_AUTH_TOKEN: TOKEN }),
  ]);
}, 90000);

afterAll(async () => {
  await Promise.all([plain?.stop(), guarded?.stop()]);
  tmp.remove();
});

describe('the PyTorch pretrainer', () => {
  it.each(conformanceChecks('pretrainer').map((check) => [check.name, check] as const))('%s', async (_title, check) => {
    await check.run({ address: plain.target, credentials: grpc.credentials.createInsecure() });
  });

  it('passes `npm run conformance -- --service pretrainer` behind a bearer token, and fails without it', async () => {
    const tokenFile = path.join(tmp.dir, 'token');
    fs.writeFileSync(tokenFile, `${TOKEN}\n`);
    const cli = (...args: string[]) =>
      promisify(execFile)(
        process.execPath,
        [...tsxLoaderArgs(), path.join(__dirname, '..', 'src', 'cli.ts'), ...args],
        { timeout: 60000 },
      ).then(
        ({ stdout }) => ({ code: 0, stdout }),
        (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
      );
    const all = conformanceChecks('pretrainer').length;
    expect(await cli('--service', 'pretrainer', '--target', guarded.target, '--token-file', tokenFile)).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(`${all} of ${all} checks passed`),
    });
    expect(await cli('--service', 'pretrainer', '--target', guarded.target)).toMatchObject({
      code: 1,
      stdout: expect.stringContaining('UNAUTHENTICATED'),
    });
  });

  it('drains and exits 0 on SIGTERM', async () => {
    expect(await plain.stop()).toBe(0);
    expect(plainLog.join('\n')).toContain('"msg":"stopped"');
  });
});
