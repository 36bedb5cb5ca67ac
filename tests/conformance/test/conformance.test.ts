import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { makeTempDir, makeTlsFixture, tsxLoaderArgs, type TlsFixture } from '@medsyn/testing';
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

/** `npm run conformance -- ARGS` with env added to ours: its exit code and what it printed. */
const cliWith =
  (env: NodeJS.ProcessEnv) =>
  (...args: string[]) =>
    promisify(execFile)(process.execPath, [...tsxLoaderArgs(), path.join(__dirname, '..', 'src', 'cli.ts'), ...args], {
      timeout: 60000,
      env: { ...process.env, ...env },
    }).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (error: { code: number; stdout: string; stderr: string }) => ({
        code: error.code,
        stdout: `${error.stdout}${error.stderr}`,
      }),
    );

describe('npm run conformance', () => {
  const cli = cliWith({});

  it('passes our evaluator at its address', async () => {
    const { code, stdout } = await cli('--service', 'evaluator', '--target', local.services.get('evaluator')!.target);
    expect(stdout).toContain(
      `evaluator at ${local.services.get('evaluator')!.target}: ${conformanceChecks('evaluator').length} of ${conformanceChecks('evaluator').length} checks passed`,
    );
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
    expect(await cli('--service', 'evaluator')).toMatchObject({
      code: 2,
      stdout: expect.stringContaining('--target must be host:port'),
    });
    expect(await cli('--service', 'renderer', '--target', '127.0.0.1:1')).toMatchObject({
      code: 2,
      stdout: expect.stringContaining('--service must be one of anonymizer, synthesizer, pretrainer, evaluator'),
    });
  });
});

describe('npm run conformance against a service that asks for a bearer token (and TLS)', () => {
  const TOKEN = 'conformance-test-token-0123456789';
  const tokenFile = path.join(tmp.dir, 'token');
  const all = `${conformanceChecks('evaluator').length} of ${conformanceChecks('evaluator').length} checks passed`;
  let tls: TlsFixture;
  let tokenOnly: LocalServices;
  let withTls: LocalServices;
  const address = (services: LocalServices) => services.services.get('evaluator')!.target;

  beforeAll(async () => {
    fs.mkdirSync(path.join(tmp.dir, 'tls'), { recursive: true });
    tls = makeTlsFixture(path.join(tmp.dir, 'tls'));
    fs.writeFileSync(tokenFile, `${TOKEN}\n`);
    const store = `file://${tmp.dir}/store`;
    [tokenOnly, withTls] = await Promise.all([
      startLocalServices(['evaluator'], { MEDSYN_STORE: store, GRPC_AUTH_TOKEN: TOKEN }),
      startLocalServices(
        ['evaluator'],
        { MEDSYN_STORE: store, GRPC_AUTH_TOKEN: TOKEN, GRPC_TLS_CERT: tls.serverCert, GRPC_TLS_KEY: tls.serverKey },
        grpc.credentials.createSsl(fs.readFileSync(tls.caCert)),
      ),
    ]);
  }, 90000);
  afterAll(async () => {
    await tokenOnly?.stop();
    await withTls?.stop();
  });

  it('fails the calls that need the token when it has none', async () => {
    const { code, stdout } = await cliWith({})('--service', 'evaluator', '--target', address(tokenOnly));
    expect(code).toBe(1);
    expect(stdout).toContain('UNAUTHENTICATED');
  });

  it('passes with --token-file, or the token from GRPC_AUTH_TOKEN', async () => {
    expect(
      await cliWith({})('--service', 'evaluator', '--target', address(tokenOnly), '--token-file', tokenFile),
    ).toMatchObject({ code: 0, stdout: expect.stringContaining(all) });
    expect(
      await cliWith({ GRPC_AUTH_TOKEN: TOKEN })('--service', 'evaluator', '--target', address(tokenOnly)),
    ).toMatchObject({ code: 0, stdout: expect.stringContaining(all) });
  });

  it('speaks TLS with --tls-ca (the token from GRPC_AUTH_TOKEN_FILE), and fails without it', async () => {
    const cli = cliWith({ GRPC_AUTH_TOKEN_FILE: tokenFile });
    expect(await cli('--service', 'evaluator', '--target', address(withTls), '--tls-ca', tls.caCert)).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(all),
    });
    expect(await cli('--service', 'evaluator', '--target', address(withTls))).toMatchObject({
      code: 1,
      stdout: expect.stringContaining('FAIL answers the standard health check'),
    });
  });

  it('refuses, before calling anything, to send a token in clear off this machine, or a client certificate without a CA', async () => {
    expect(
      await cliWith({})('--service', 'evaluator', '--target', '10.0.3.7:50054', '--token-file', tokenFile),
    ).toMatchObject({ code: 2, stdout: expect.stringContaining('the token would go to 10.0.3.7:50054 in clear') });
    expect(
      await cliWith({})(
        '--service',
        'evaluator',
        '--target',
        '127.0.0.1:1',
        '--tls-cert',
        tls.clientCert,
        '--tls-key',
        tls.clientKey,
      ),
    ).toMatchObject({ code: 2, stdout: expect.stringContaining('--tls-cert and --tls-key need --tls-ca') });
    expect(
      await cliWith({})(
        '--service',
        'evaluator',
        '--target',
        '127.0.0.1:1',
        '--token-file',
        path.join(tmp.dir, 'absent'),
      ),
    ).toMatchObject({ code: 2, stdout: expect.stringContaining('--token-file: cannot read') });
  });
});
