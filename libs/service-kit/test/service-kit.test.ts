import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import {
  healthCheck,
  makeTempDir,
  makeTlsFixture,
  promtoolCheckMetrics,
  reflectionListServices,
  startProcess,
  tsxLoaderArgs,
  type TlsFixture,
} from '@medsyn/testing';
import { common, jobs } from '@medsyn/proto';
import { ConfigError, startService, type RunningService } from '../src';
import { TestServiceClient, serverSide, testService } from './fixtures/test-service';

type Client = grpc.Client & Record<string, CallableFunction>;

const tmp = makeTempDir('kit');
let tls: TlsFixture;
beforeAll(() => {
  tls = makeTlsFixture(tmp.dir);
});
afterAll(() => tmp.remove());

const baseEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({
  GRPC_HOST: '127.0.0.1',
  GRPC_PORT: '0',
  METRICS_HOST: '127.0.0.1',
  METRICS_PORT: '0',
  MEDSYN_STORE: `file://${path.join(tmp.dir, 'store')}`,
  LOG_LEVEL: 'debug',
  ...extra,
});

/** Collects a service's log lines. */
function logSink() {
  const lines: string[] = [];
  const destination = new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) });
  return { lines, destination };
}

function unary<T>(
  client: Client,
  method: string,
  request: unknown,
  options: { deadlineMs?: number; metadata?: grpc.Metadata; onCall?: (call: grpc.ClientUnaryCall) => void } = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    const call = client[method](
      request,
      options.metadata ?? new grpc.Metadata(),
      options.deadlineMs ? { deadline: Date.now() + options.deadlineMs } : {},
      (error: grpc.ServiceError | null, response: T) => (error ? reject(error) : resolve(response)),
    ) as grpc.ClientUnaryCall;
    options.onCall?.(call);
  });
}

describe('a service started with the kit', () => {
  let service: RunningService;
  let client: Client;
  const logs = logSink();

  beforeAll(async () => {
    service = await startService(
      testService(baseEnv({ GRPC_MAX_MESSAGE_BYTES: '4096' }), { logDestination: logs.destination }),
    );
    client = new TestServiceClient(service.target, grpc.credentials.createInsecure()) as Client;
  });
  afterAll(async () => {
    client?.close();
    await service?.shutdown();
  });

  it('answers the standard health check for the server and for each service', async () => {
    expect(await healthCheck(service.target)).toBe('SERVING');
    expect(await healthCheck(service.target, 'medsyn.test.v1.TestService')).toBe('SERVING');
    await expect(healthCheck(service.target, 'no.such.Service')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('serves reflection', async () => {
    expect(await reflectionListServices(service.target)).toContain('grpc.health.v1.Health');
  });

  it('stops server-side work when the deadline passes', async () => {
    const ended = serverSide.nextSleepEnding();
    await expect(unary(client, 'sleep', { ms: 5000 }, { deadlineMs: 500 })).rejects.toMatchObject({
      code: grpc.status.DEADLINE_EXCEEDED,
    });
    // grpc-js answers DEADLINE_EXCEEDED when the deadline passes, then cancels the call's work.
    expect(await ended).toBe('aborted: deadline exceeded');
  });

  it('stops server-side work when the client cancels', async () => {
    const [started, ended] = [serverSide.nextSleepStart(), serverSide.nextSleepEnding()];
    const pending = unary(client, 'sleep', { ms: 5000 }, { onCall: (call) => void started.then(() => call.cancel()) });
    await expect(pending).rejects.toMatchObject({ code: grpc.status.CANCELLED });
    expect(await ended).toBe('aborted: cancelled');
  });

  it('refuses messages above the configured size', async () => {
    await expect(unary(client, 'echo', { text: 'x'.repeat(8000) })).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
    });
    expect(await unary(client, 'echo', { text: 'fits' })).toEqual({ text: 'fits' });
  });

  it('turns a handler crash into INTERNAL without echoing the payload anywhere', async () => {
    const phi = 'crash: John Smith MRN 1234567';
    const error = await unary(client, 'echo', { text: phi }).catch((e: grpc.ServiceError) => e);
    expect(error).toMatchObject({ code: grpc.status.INTERNAL, details: 'internal error' });
    expect(await healthCheck(service.target)).toBe('SERVING');
    const logged = logs.lines.join('');
    expect(logged).toContain('"method":"/medsyn.test.v1.TestService/Echo","code":"INTERNAL"');
    expect(logged).not.toMatch(/Smith|1234567/);
    const metrics = await (await fetch(`http://127.0.0.1:${service.metricsPort}/metrics`)).text();
    expect(metrics).not.toMatch(/Smith|1234567/);
  });

  it('exports request metrics that promtool accepts', async () => {
    // A service of its own, so that the counts are this test's whether or not the others ran.
    const own = await startService(testService(baseEnv(), { logDestination: logSink().destination }));
    const ownClient = new TestServiceClient(own.target, grpc.credentials.createInsecure()) as Client;
    try {
      await unary(ownClient, 'echo', { text: 'fits' });
      // Each Sleep ends by deadline or cancel: the kit counts it before the handler's work stops.
      let ended = serverSide.nextSleepEnding();
      await expect(unary(ownClient, 'sleep', { ms: 5000 }, { deadlineMs: 500 })).rejects.toMatchObject({
        code: grpc.status.DEADLINE_EXCEEDED,
      });
      await ended;
      const started = serverSide.nextSleepStart();
      ended = serverSide.nextSleepEnding();
      await expect(
        unary(ownClient, 'sleep', { ms: 5000 }, { onCall: (call) => void started.then(() => call.cancel()) }),
      ).rejects.toMatchObject({ code: grpc.status.CANCELLED });
      await ended;
      expect(await healthCheck(own.target)).toBe('SERVING');

      const text = await (await fetch(`http://127.0.0.1:${own.metricsPort}/metrics`)).text();
      expect(text).toMatch(
        /medsyn_kit_test_grpc_requests_total\{method="\/medsyn.test.v1.TestService\/Echo",code="OK"\} 1\n/,
      );
      expect(text).toMatch(
        /medsyn_kit_test_grpc_requests_total\{method="\/medsyn.test.v1.TestService\/Sleep",code="DEADLINE_EXCEEDED"\} 1\n/,
      );
      expect(text).toMatch(
        /medsyn_kit_test_grpc_requests_total\{method="\/medsyn.test.v1.TestService\/Sleep",code="CANCELLED"\} 1\n/,
      );
      expect(text).not.toMatch(
        /medsyn_kit_test_grpc_requests_total\{method="\/medsyn.test.v1.TestService\/Sleep",code="OK"\}/,
      );
      expect(text).toMatch(/medsyn_kit_test_grpc_requests_in_flight\{method="\/medsyn.test.v1.TestService\/Sleep"\} 0/);
      expect(text).toMatch(
        /medsyn_kit_test_grpc_request_duration_seconds_count\{method="\/grpc.health.v1.Health\/Check"\} [1-9]/,
      );
      expect(promtoolCheckMetrics(text)).toBe('');
    } finally {
      ownClient.close();
      await own.shutdown();
    }
  });
});

describe('jobs over gRPC', () => {
  let service: RunningService;
  let client: Client;
  let jobsClient: Client;

  beforeAll(async () => {
    service = await startService(
      testService(baseEnv({ MEDSYN_STORE: `file://${path.join(tmp.dir, 'jobs-store')}` }), {
        logDestination: logSink().destination,
      }),
    );
    client = new TestServiceClient(service.target, grpc.credentials.createInsecure()) as Client;
    jobsClient = new jobs.JobServiceClient(service.target, grpc.credentials.createInsecure()) as unknown as Client;
  });
  afterAll(async () => {
    client?.close();
    jobsClient?.close();
    await service?.shutdown();
  });

  function watch(jobId: string): Promise<common.Job[]> {
    return new Promise((resolve, reject) => {
      const seen: common.Job[] = [];
      const call = jobsClient.watchJob({ jobId }) as grpc.ClientReadableStream<{ job: common.Job }>;
      call.on('data', (response) => seen.push(response.job));
      call.on('end', () => resolve(seen));
      call.on('error', reject);
    });
  }

  it('streams a job from start to success, and finds it again by request id', async () => {
    const started = await unary<{ jobId: string }>(client, 'startCount', {
      requestId: 'count-1',
      steps: 4,
      stepMs: 20,
    });
    const states = await watch(started.jobId);
    expect(states[0]!.jobId).toBe(started.jobId);
    expect(states.at(-1)).toMatchObject({
      state: common.JobState.JOB_STATE_SUCCEEDED,
      progress: { completed: 4, total: 4, unit: 'steps' },
      requestId: 'count-1',
    });
    expect(
      (await unary<{ jobId: string }>(client, 'startCount', { requestId: 'count-1', steps: 4, stepMs: 20 })).jobId,
    ).toBe(started.jobId);
    const listed = await unary<{ jobs: common.Job[] }>(jobsClient, 'listJobs', jobs.ListJobsRequest.fromPartial({}));
    expect(listed.jobs.map((j) => j.jobId)).toContain(started.jobId);
  });

  it('cancels a running job', async () => {
    const started = await unary<{ jobId: string }>(client, 'startCount', {
      requestId: 'count-2',
      steps: 1000,
      stepMs: 20,
    });
    const watching = watch(started.jobId);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const cancelled = await unary<{ job: common.Job }>(jobsClient, 'cancelJob', { jobId: started.jobId });
    expect(cancelled.job.state).toBe(common.JobState.JOB_STATE_CANCELLED);
    expect((await watching).at(-1)!.state).toBe(common.JobState.JOB_STATE_CANCELLED);
  });

  it('answers a reused request id with other parameters with ALREADY_EXISTS', async () => {
    await unary(client, 'startCount', { requestId: 'count-3', steps: 1, stepMs: 1 });
    await expect(unary(client, 'startCount', { requestId: 'count-3', steps: 2, stepMs: 1 })).rejects.toMatchObject({
      code: grpc.status.ALREADY_EXISTS,
    });
  });
});

describe('graceful shutdown', () => {
  it('lets in-flight calls finish, refuses new ones, then stops', async () => {
    const service = await startService(
      testService(baseEnv({ SHUTDOWN_GRACE_SECONDS: '10' }), { logDestination: logSink().destination }),
    );
    const client = new TestServiceClient(service.target, grpc.credentials.createInsecure()) as Client;
    const started = serverSide.nextSleepStart();
    const inFlight = unary(client, 'sleep', { ms: 600, ignoreAbort: true });
    await started;
    const stopped = service.shutdown();
    await expect(unary(client, 'echo', { text: 'late' }, { deadlineMs: 2000 })).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    expect(await inFlight).toEqual({ ending: 'completed' });
    await stopped;
    client.close();
  });

  it('cuts calls still running at the grace deadline', async () => {
    const service = await startService(
      testService(baseEnv({ SHUTDOWN_GRACE_SECONDS: '0.3' }), { logDestination: logSink().destination }),
    );
    const client = new TestServiceClient(service.target, grpc.credentials.createInsecure()) as Client;
    const running = serverSide.nextSleepStart();
    const inFlight = unary(client, 'sleep', { ms: 10000, ignoreAbort: true }).catch(
      (error: grpc.ServiceError) => error,
    );
    await running;
    const started = Date.now();
    await service.shutdown();
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await inFlight).toMatchObject({ code: grpc.status.CANCELLED });
    client.close();
  });

  it('drains and exits 0 on SIGTERM as a real process', async () => {
    const script = path.join(__dirname, 'fixtures', 'serve-test-service.ts');
    const proc = await startProcess(process.execPath, {
      args: [...tsxLoaderArgs(), script],
      env: baseEnv({ LOG_LEVEL: 'info', SHUTDOWN_GRACE_SECONDS: '10' }),
      readyWhen: /"grpcPort":(\d+)/,
    });
    const client = new TestServiceClient(
      `127.0.0.1:${proc.readyMatch![1]}`,
      grpc.credentials.createInsecure(),
    ) as Client;
    const inFlight = unary(client, 'sleep', { ms: 800, ignoreAbort: true });
    await new Promise((resolve) => setTimeout(resolve, 200));
    proc.child.kill('SIGTERM');
    expect(await inFlight).toEqual({ ending: 'completed' });
    expect(await proc.exited).toBe(0);
    expect(proc.output()).toMatch(/"graceful":true.*"msg":"stopped"/);
    client.close();
  });
});

describe('bad configuration fails fast with a clear message', () => {
  const script = path.join(__dirname, 'fixtures', 'serve-test-service.ts');
  async function exitOf(env: NodeJS.ProcessEnv) {
    const proc = await startProcess(process.execPath, { args: [...tsxLoaderArgs(), script], env: baseEnv(env) });
    return { code: await proc.exited, output: proc.output() };
  }

  it('a bad port', async () => {
    const { code, output } = await exitOf({ GRPC_PORT: 'fifty' });
    expect(code).toBe(1);
    expect(output).toMatch(/GRPC_PORT: must be a port number \(got \\"fifty\\"\)/);
  });

  it('a port already in use', async () => {
    const holder = await startService(testService(baseEnv(), { logDestination: logSink().destination }));
    const { code, output } = await exitOf({ GRPC_PORT: String(holder.grpcPort) });
    await holder.shutdown();
    expect(code).toBe(1);
    expect(output).toMatch(/GRPC_PORT: cannot listen on 127\.0\.0\.1:\d+/);
  });

  it('an unreachable store', async () => {
    const started = Date.now();
    const { code, output } = await exitOf({
      MEDSYN_STORE: 's3://medsyn?endpoint=http://127.0.0.1:9',
      MEDSYN_S3_ACCESS_KEY: 'k',
      MEDSYN_S3_SECRET_KEY: 's',
    });
    expect(code).toBe(1);
    expect(output).toMatch(/MEDSYN_STORE: reach s3:\/\/medsyn at http:\/\/127\.0\.0\.1:9 failed .*ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(15000);
  });

  it('an unreadable TLS file', async () => {
    const { code, output } = await exitOf({
      GRPC_TLS_CERT: path.join(tmp.dir, 'missing.crt'),
      GRPC_TLS_KEY: tls.serverKey,
    });
    expect(code).toBe(1);
    expect(output).toMatch(/GRPC_TLS_CERT: cannot read .*missing\.crt \(ENOENT\)/);
  });

  it('a garbage GRPC_TLS_CLIENT_CA: exits 1 naming it instead of starting "ready" and refusing every client', async () => {
    const garbage = path.join(tmp.dir, 'garbage-ca.pem');
    fs.writeFileSync(garbage, 'not a certificate\n');
    const { code, output } = await exitOf({
      GRPC_TLS_CERT: tls.serverCert,
      GRPC_TLS_KEY: tls.serverKey,
      GRPC_TLS_CLIENT_CA: garbage,
    });
    expect(code).toBe(1);
    expect(output).toMatch(/GRPC_TLS_CLIENT_CA: not a bundle of PEM CA certificates/);
    expect(output).not.toMatch(/"msg":"ready"/);
  });

  it('an unprotected GRPC_HOST=0.0.0.0: exits 1 naming the variables that would allow it', async () => {
    const { code, output } = await exitOf({ GRPC_HOST: '0.0.0.0' });
    expect(code).toBe(1);
    expect(output).toMatch(/GRPC_HOST: .*GRPC_TLS_CERT.*GRPC_AUTH_TOKEN.*GRPC_INSECURE_LISTEN=true/);
  });

  it('in-process too, as a ConfigError', async () => {
    await expect(startService(testService(baseEnv({ METRICS_PORT: '-3' })))).rejects.toThrow(ConfigError);
  });
});

describe('transport security and authentication', () => {
  const read = (file: string) => fs.readFileSync(file);

  it('serves TLS to clients that trust its CA, and refuses plaintext', async () => {
    const service = await startService(
      testService(baseEnv({ GRPC_TLS_CERT: tls.serverCert, GRPC_TLS_KEY: tls.serverKey }), {
        logDestination: logSink().destination,
      }),
    );
    const secure = new TestServiceClient(
      `localhost:${service.grpcPort}`,
      grpc.credentials.createSsl(read(tls.caCert)),
    ) as Client;
    const plain = new TestServiceClient(`localhost:${service.grpcPort}`, grpc.credentials.createInsecure()) as Client;
    expect(await unary(secure, 'echo', { text: 'over tls' })).toEqual({ text: 'over tls' });
    await expect(unary(plain, 'echo', { text: 'plain' }, { deadlineMs: 2000 })).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    secure.close();
    plain.close();
    await service.shutdown();
  });

  it('requires a client certificate signed by the client CA with mutual TLS', async () => {
    const service = await startService(
      testService(
        baseEnv({ GRPC_TLS_CERT: tls.serverCert, GRPC_TLS_KEY: tls.serverKey, GRPC_TLS_CLIENT_CA: tls.caCert }),
        { logDestination: logSink().destination },
      ),
    );
    const withCert = new TestServiceClient(
      `localhost:${service.grpcPort}`,
      grpc.credentials.createSsl(read(tls.caCert), read(tls.clientKey), read(tls.clientCert)),
    ) as Client;
    const withoutCert = new TestServiceClient(
      `localhost:${service.grpcPort}`,
      grpc.credentials.createSsl(read(tls.caCert)),
    ) as Client;
    expect(await unary(withCert, 'echo', { text: 'mutual' })).toEqual({ text: 'mutual' });
    await expect(unary(withoutCert, 'echo', { text: 'anonymous' }, { deadlineMs: 2000 })).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    withCert.close();
    withoutCert.close();
    await service.shutdown();
  });

  it('requires the bearer token on service RPCs but not on health checks', async () => {
    const token = 'a-long-enough-test-token';
    const service = await startService(
      testService(baseEnv({ GRPC_AUTH_TOKEN: token }), { logDestination: logSink().destination }),
    );
    const client = new TestServiceClient(service.target, grpc.credentials.createInsecure()) as Client;
    const bearer = (value: string) => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', value);
      return metadata;
    };
    await expect(unary(client, 'echo', { text: 'x' })).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    await expect(
      unary(client, 'echo', { text: 'x' }, { metadata: bearer('Bearer wrong-token-wrong-token') }),
    ).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
    expect(await unary(client, 'echo', { text: 'x' }, { metadata: bearer(`Bearer ${token}`) })).toEqual({ text: 'x' });
    expect(await healthCheck(service.target)).toBe('SERVING');
    client.close();
    await service.shutdown();
  });

  it('warns at start when GRPC_INSECURE_LISTEN=true opens an unprotected port beyond loopback', async () => {
    const logs = logSink();
    const service = await startService(
      testService(baseEnv({ GRPC_HOST: '0.0.0.0', GRPC_INSECURE_LISTEN: 'true' }), {
        logDestination: logs.destination,
      }),
    );
    expect(await healthCheck(service.target)).toBe('SERVING');
    await service.shutdown();
    const warning = logs.lines.map((line) => JSON.parse(line)).find((entry) => entry.level === 40);
    expect(warning).toMatchObject({
      grpcHost: '0.0.0.0',
      msg: expect.stringMatching(/GRPC_INSECURE_LISTEN=true: serving without TLS or a bearer token/),
    });
  });
});
