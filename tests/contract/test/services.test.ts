import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { healthCheck, makeTempDir, repoRoot, startProcess, tsxLoaderArgs, type ManagedProcess } from '@medsyn/testing';

const SERVICES = ['anonymizer', 'synthesizer', 'pretrainer', 'evaluator'] as const;
const tmp = makeTempDir('contract');
const running = new Map<string, { proc: ManagedProcess; target: string; metricsPort: number }>();

/** Each service as its own process, from its sources, on free loopback ports, sharing one store. */
beforeAll(async () => {
  await Promise.all(
    SERVICES.map(async (name) => {
      const proc = await startProcess(process.execPath, {
        args: [...tsxLoaderArgs(), path.join(repoRoot, 'services', name, 'src', 'main.ts')],
        env: {
          GRPC_HOST: '127.0.0.1',
          GRPC_PORT: '0',
          METRICS_HOST: '127.0.0.1',
          METRICS_PORT: '0',
          MEDSYN_STORE: `file://${tmp.dir}/store`,
        },
        readyWhen: /"grpcPort":(\d+),"metricsPort":(\d+)/,
      });
      running.set(name, { proc, target: `127.0.0.1:${proc.readyMatch![1]}`, metricsPort: Number(proc.readyMatch![2]) });
    }),
  );
}, 60000);

afterAll(async () => {
  await Promise.all([...running.values()].map(({ proc }) => proc.stop()));
  tmp.remove();
});

describe('the four services as processes', () => {
  it('each answers the standard health check', async () => {
    for (const name of SERVICES) {
      expect(await healthCheck(running.get(name)!.target)).toBe('SERVING');
      expect(
        await healthCheck(
          running.get(name)!.target,
          `medsyn.${name}.v1.${name[0]!.toUpperCase()}${name.slice(1)}Service`,
        ),
      ).toBe('SERVING');
    }
  });

  it('each serves /metrics on its own port', async () => {
    for (const name of SERVICES) {
      const text = await (await fetch(`http://127.0.0.1:${running.get(name)!.metricsPort}/metrics`)).text();
      expect(text).toContain(`medsyn_${name}_grpc_requests_total{method="/grpc.health.v1.Health/Check",code="OK"}`);
    }
  });

  it('speak to a Python client built from the .proto files alone', async () => {
    const healthProtoRoot = path.join(path.dirname(require.resolve('grpc-health-check/package.json')), 'proto');
    const args = [
      path.join(__dirname, '..', 'python', 'contract_client.py'),
      path.join(repoRoot, 'proto'),
      healthProtoRoot,
      ...SERVICES.map((n) => `${n}=${running.get(n)!.target}`),
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
      const { proc } = running.get(name)!;
      proc.child.kill('SIGTERM');
      expect(await proc.exited).toBe(0);
      expect(proc.output()).toContain('"msg":"stopped"');
    }
  });
});
