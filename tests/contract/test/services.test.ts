import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { startLocalServices, type LocalServices } from '@medsyn/conformance';
import { healthCheck, makeTempDir, repoRoot } from '@medsyn/testing';

const SERVICES = ['anonymizer', 'synthesizer', 'pretrainer', 'evaluator'] as const;
const tmp = makeTempDir('contract');
let local: LocalServices;
const running = (name: (typeof SERVICES)[number]) => local.services.get(name)!;

/** Each service as its own process, from its sources, on free loopback ports, sharing one store. */
beforeAll(async () => {
  local = await startLocalServices(SERVICES, { MEDSYN_STORE: `file://${tmp.dir}/store` });
}, 120000);

afterAll(async () => {
  await local?.stop();
  tmp.remove();
});

describe('the four services as processes', () => {
  it('each answers the standard health check', async () => {
    for (const name of SERVICES) {
      expect(await healthCheck(running(name).target)).toBe('SERVING');
      expect(
        await healthCheck(running(name).target, `medsyn.${name}.v1.${name[0]!.toUpperCase()}${name.slice(1)}Service`),
      ).toBe('SERVING');
    }
  });

  it('each serves /metrics on its own port', async () => {
    for (const name of SERVICES) {
      const text = await (await fetch(`http://127.0.0.1:${running(name).metricsPort}/metrics`)).text();
      expect(text).toContain(`medsyn_${name}_grpc_requests_total{method="/grpc.health.v1.Health/Check",code="OK"}`);
    }
  });

  it('speak to a Python client built from the .proto files alone', async () => {
    const healthProtoRoot = path.join(path.dirname(require.resolve('grpc-health-check/package.json')), 'proto');
    const args = [
      path.join(__dirname, '..', 'python', 'contract_client.py'),
      path.join(repoRoot, 'proto'),
      healthProtoRoot,
      ...SERVICES.map((n) => `${n}=${running(n).target}`),
    ];
    const { stdout } = await promisify(execFile)('/usr/bin/python3', args, { timeout: 60000 });
    const results = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(results).toEqual(
      SERVICES.map((name) => ({
        service: `medsyn.${name}.v1.${name[0]!.toUpperCase()}${name.slice(1)}Service`,
        health: 'SERVING',
        jobs: 0,
        get_missing_job: 'NOT_FOUND: job "no-such-job" not found',
      })),
    );
  });

  it('each drains and exits 0 on SIGTERM', async () => {
    for (const name of SERVICES) {
      const service = running(name);
      service.child.kill('SIGTERM');
      expect(await service.exited).toBe(0);
      expect(service.output()).toContain('"msg":"stopped"');
    }
  });
});
