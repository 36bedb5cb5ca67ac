import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { makeTempDir, tsxLoaderArgs } from '@medsyn/testing';
import { CONTRACTS, conformanceChecks, startLocalServices, type ContractName, type LocalServices } from '../src';

const NAMES = Object.keys(CONTRACTS) as ContractName[];
const tmp = makeTempDir('conformance');
let local: LocalServices;

beforeAll(async () => {
  local = await startLocalServices(NAMES, { MEDSYN_STORE: `file://${tmp.dir}/store` });
}, 90000);

afterAll(async () => {
  await local?.stop();
  tmp.remove();
});

describe.each(NAMES)('our %s', (name) => {
  it.each(conformanceChecks(name).map((check) => [check.name, check] as const))('%s', async (_title, check) => {
    await check.run({ address: local.services.get(name)!.target, credentials: grpc.credentials.createInsecure() });
  });
});

describe('npm run conformance', () => {
  const cli = (...args: string[]) =>
    promisify(execFile)(process.execPath, [...tsxLoaderArgs(), path.join(__dirname, '..', 'src', 'cli.ts'), ...args], { timeout: 60000 }).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: `${error.stdout}${error.stderr}` }),
    );

  it('passes our evaluator at its address', async () => {
    const { code, stdout } = await cli('--service', 'evaluator', '--target', local.services.get('evaluator')!.target);
    expect(stdout).toContain(`evaluator at ${local.services.get('evaluator')!.target}: ${conformanceChecks('evaluator').length} of ${conformanceChecks('evaluator').length} checks passed`);
    expect(code).toBe(0);
  });

  it('fails, saying why, when the address serves another contract', async () => {
    const { code, stdout } = await cli('--service', 'anonymizer', '--target', local.services.get('pretrainer')!.target);
    expect(code).toBe(1);
    expect(stdout).toContain('FAIL answers the standard health check');
    expect(stdout).toContain('FAIL lists its contract');
    expect(stdout).toContain('not medsyn.anonymizer.v1.AnonymizerService');
  });

  it('refuses a missing target or unknown service before calling anything', async () => {
    expect(await cli('--service', 'evaluator')).toMatchObject({ code: 2, stdout: expect.stringContaining('--target must be host:port') });
    expect(await cli('--service', 'renderer', '--target', '127.0.0.1:1')).toMatchObject({ code: 2, stdout: expect.stringContaining('--service must be one of anonymizer, synthesizer, pretrainer, evaluator') });
  });
});
