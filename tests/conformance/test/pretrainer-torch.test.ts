import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { makeTempDir, repoRoot, startProcess, tsxLoaderArgs, type ManagedProcess } from '@medsyn/testing';
import { conformanceChecks } from '../src';

// The swap the contracts promise: the PyTorch implementation of the pretrainer contract
// (services/pretrainer-torch, Python) passes the same checks as ours, alone and behind a token.
const tmp = makeTempDir('conformance-torch');
const TOKEN = 'conformance-torch-token-0123456789';
let plain: { proc: ManagedProcess; target: string };
let guarded: { proc: ManagedProcess; target: string };

async function startTorchPretrainer(env: NodeJS.ProcessEnv) {
  const proc = await startProcess('/usr/bin/python3', {
    args: ['-m', 'medsyn_pretrainer_torch.main'],
    cwd: path.join(repoRoot, 'services', 'pretrainer-torch'),
    env: {
      GRPC_HOST: '127.0.0.1',
      GRPC_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      METRICS_PORT: '0',
      MEDSYN_STORE: `file://${tmp.dir}/store`,
      ...env,
    },
    readyWhen: /"grpcPort":(\d+),"metricsPort":(\d+)/,
    readyTimeoutMs: 60000,
  });
  return { proc, target: `127.0.0.1:${proc.readyMatch![1]}` };
}

beforeAll(async () => {
  [plain, guarded] = await Promise.all([startTorchPretrainer({}), startTorchPretrainer({ GRPC_AUTH_TOKEN: TOKEN })]);
}, 90000);

afterAll(async () => {
  await Promise.all([plain?.proc.stop(), guarded?.proc.stop()]);
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
    plain.proc.child.kill('SIGTERM');
    expect(await plain.proc.exited).toBe(0);
    expect(plain.proc.output()).toContain('"msg":"stopped"');
  });
});
