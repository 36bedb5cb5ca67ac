import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  healthCheck,
  serviceNodeArgs,
  startServiceProcess,
  startServiceProcesses,
  tsxLoaderArgs,
  type ServiceProcess,
  type ServiceProcessOptions,
} from '../src';

const fixture = path.join(__dirname, 'fixtures', 'health-server.ts');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'local-services-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The stand-in service; `pids` collects the pid it prints, to check it is gone later. */
function standIn(env: NodeJS.ProcessEnv = {}, pids: number[] = []): ServiceProcessOptions {
  return {
    name: 'stand-in',
    args: [...tsxLoaderArgs(), fixture],
    env: { ...process.env, ...env },
    onLine: (line) => /^pid (\d+)$/.test(line) && pids.push(Number(line.slice(4))),
  };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('startServiceProcess', () => {
  it('resolves only once the health check says SERVING, not when the port opens', async () => {
    const started = Date.now();
    const service = await startServiceProcess(standIn({ READY_AFTER_MS: '1500' }));
    try {
      expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
      expect(await healthCheck(service.target)).toBe('SERVING');
      expect(service.target).toBe(`127.0.0.1:${service.grpcPort}`);
      expect(service.metricsPort).not.toBe(service.grpcPort);
    } finally {
      expect(await service.stop()).toBe(0);
    }
  });

  it('names the service and quotes the tail of its output when it exits before it is ready', async () => {
    const exitEarly = "console.error('loading'); console.error('MODEL_DIR: no model.json'); process.exit(3)";
    await expect(
      startServiceProcess({ name: 'synthesizer', args: ['-e', exitEarly], env: process.env }),
    ).rejects.toThrow(/^the synthesizer exited \(code 3\) before it was ready:\nloading\nMODEL_DIR: no model\.json$/);
  });

  it('quotes the log file, from where this start began, when the output goes there', async () => {
    const logFile = path.join(tmp, 'early.log');
    fs.writeFileSync(logFile, 'an earlier run\n');
    await expect(
      startServiceProcess({
        name: 'evaluator',
        args: ['-e', "console.error('GRPC_PORT: cannot listen'); process.exit(1)"],
        env: process.env,
        logFile,
      }),
    ).rejects.toThrow(`the evaluator exited (code 1) before it was ready (log: ${logFile}):\nGRPC_PORT: cannot listen`);
    expect(fs.readFileSync(logFile, 'utf8')).toBe('an earlier run\nGRPC_PORT: cannot listen\n');
  });

  it('gives up after readyTimeoutMs and kills the process', async () => {
    const pids: number[] = [];
    await expect(
      startServiceProcess({ ...standIn({ READY_AFTER_MS: '600000' }, pids), readyTimeoutMs: 2000 }),
    ).rejects.toThrow(/^the stand-in was not SERVING within 2 s:\npid \d+$/);
    expect(alive(pids[0]!)).toBe(false);
  });

  it('stops with SIGTERM, and with SIGKILL once the grace period is over', async () => {
    const stubborn = await startServiceProcess(standIn({ IGNORE_SIGTERM: '1' }));
    expect(await stubborn.stop(500)).toBe('SIGKILL');
    const polite = await startServiceProcess(standIn());
    expect(await polite.stop(500)).toBe(0);
  });

  it('kills at once with SIGKILL, as a crashed pod dies, where SIGTERM would have let it exit 0', async () => {
    const pids: number[] = [];
    const service = await startServiceProcess(standIn({}, pids));
    expect(await service.kill()).toBe('SIGKILL');
    expect(alive(pids[0]!)).toBe(false);
  });

  it('runs another program than node, in the folder it is given', async () => {
    await expect(
      startServiceProcess({
        name: 'torch pretrainer',
        command: '/bin/sh',
        args: ['-c', 'pwd; exit 4'],
        cwd: tmp,
        env: process.env,
      }),
    ).rejects.toThrow(`the torch pretrainer exited (code 4) before it was ready:\n${fs.realpathSync(tmp)}`);
  });
});

describe('startServiceProcesses', () => {
  it('stops the services that started when another fails, and says which failed', async () => {
    const pids: number[] = [];
    await expect(
      startServiceProcesses([
        standIn({}, pids),
        { name: 'anonymizer', args: ['-e', 'process.exit(2)'], env: process.env },
      ]),
    ).rejects.toThrow(/^the anonymizer exited \(code 2\) before it was ready$/);
    expect(pids).toHaveLength(1);
    expect(alive(pids[0]!)).toBe(false);
  });
});

describe('a real service (the anonymizer, rules only, from its sources)', () => {
  let service: ServiceProcess;
  beforeAll(async () => {
    service = await startServiceProcess({
      name: 'anonymizer',
      args: serviceNodeArgs('anonymizer', 'source'),
      env: {
        ...process.env,
        GRPC_HOST: '127.0.0.1',
        METRICS_HOST: '127.0.0.1',
        MEDSYN_STORE: `file://${tmp}/store`,
        ANONYMIZER_DETECTOR: 'rules',
      },
    });
  }, 120_000);
  afterAll(() => service?.stop());

  it('is SERVING through the health service service-kit gives it, its metrics on the port it was given', async () => {
    expect(await healthCheck(service.target, 'medsyn.anonymizer.v1.AnonymizerService')).toBe('SERVING');
    const metrics = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
    expect(metrics).toContain('medsyn_anonymizer_');
  });

  it('shuts down cleanly when the pipe from its parent closes (as when the parent dies)', async () => {
    service.child.stdin!.end();
    expect(await service.exited).toBe(0);
  });
});

describe('serviceNodeArgs', () => {
  it('says how to build a service that has no build', () => {
    expect(() => serviceNodeArgs('no-such-service', 'dist')).toThrow(
      /^cannot start the no-such-service: no .*services\/no-such-service\/dist\/main\.js \(build it: npx nx build no-such-service\)$/,
    );
  });
});
