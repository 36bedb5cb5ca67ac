import * as grpc from '@grpc/grpc-js';
import { jobs } from '@medsyn/proto';
import { healthCheck } from '@medsyn/local-services';
import { reflectionListServices } from './grpc-clients';
import { makeTempDir } from './temp';

/** Environment for a service under test: loopback, free ports, a fresh filesystem store, quiet logs. */
export function testServiceEnv(storeDir: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: '0',
    METRICS_HOST: '127.0.0.1',
    METRICS_PORT: '0',
    MEDSYN_STORE: `file://${storeDir}`,
    LOG_LEVEL: 'silent',
    ...extra,
  };
}

type UnaryClient = grpc.Client &
  Record<string, (request: unknown, callback: (error: grpc.ServiceError | null, response: unknown) => void) => unknown>;

/** Calls a unary method of a generated grpc-js client and resolves with its response. */
export function callUnary<T = unknown>(client: grpc.Client, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    (client as UnaryClient)[method]!(request, (error, response) => (error ? reject(error) : resolve(response as T)));
  });
}

/** The part of a started service (service-kit's RunningService) these tests use. */
interface StartedService {
  target: string;
  shutdown(): Promise<void>;
}

export interface ServiceBasics {
  /** Starts the service in-process with the given environment (usually via startService). */
  start: (env: NodeJS.ProcessEnv) => Promise<StartedService>;
  /** Full protobuf name, e.g. medsyn.anonymizer.v1.AnonymizerService. */
  serviceName: string;
  /** The generated grpc-js client constructor. */
  Client: new (address: string, credentials: grpc.ChannelCredentials) => grpc.Client;
  /** Unary RPCs still waiting for their issue: [method, request, issue number]. */
  unimplemented: Array<[string, unknown, number]>;
}

/**
 * The behaviour every medsyn service shares, as jest tests: it boots with the kit, answers the
 * standard health check and reflection, and serves medsyn.jobs.v1.JobService.
 */
export function describeServiceBasics(basics: ServiceBasics): void {
  describe(`${basics.serviceName} basics`, () => {
    const tmp = makeTempDir('service');
    let service: StartedService;
    let client: grpc.Client;
    let jobsClient: grpc.Client;

    beforeAll(async () => {
      service = await basics.start(testServiceEnv(tmp.dir));
      client = new basics.Client(service.target, grpc.credentials.createInsecure());
      jobsClient = new jobs.JobServiceClient(service.target, grpc.credentials.createInsecure());
    });
    afterAll(async () => {
      client?.close();
      jobsClient?.close();
      await service?.shutdown();
      tmp.remove();
    });

    it('answers the standard health check', async () => {
      expect(await healthCheck(service.target)).toBe('SERVING');
      expect(await healthCheck(service.target, basics.serviceName)).toBe('SERVING');
    });

    it('describes its contract through reflection', async () => {
      expect(await reflectionListServices(service.target)).toEqual(
        ['grpc.health.v1.Health', basics.serviceName, 'medsyn.jobs.v1.JobService'].sort(),
      );
    });

    it('serves its jobs through JobService, naming the job id it cannot find', async () => {
      expect(await healthCheck(service.target, 'medsyn.jobs.v1.JobService')).toBe('SERVING');
      expect(await callUnary(jobsClient, 'listJobs', { pageSize: 10, pageToken: '' })).toEqual({
        jobs: [],
        nextPageToken: '',
      });
      await expect(callUnary(jobsClient, 'getJob', { jobId: 'nope' })).rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
        details: 'job "nope" not found',
      });
      await expect(callUnary(jobsClient, 'listJobs', { pageSize: 10, pageToken: 'garbage' })).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringContaining('page_token'),
      });
    });

    // jest refuses it.each over an empty table: a fully implemented service has nothing to list.
    if (basics.unimplemented.length > 0) {
      it.each(basics.unimplemented)(
        'answers %s with UNIMPLEMENTED until its issue lands',
        async (method, request, issue) => {
          await expect(callUnary(client, method, request)).rejects.toMatchObject({
            code: grpc.status.UNIMPLEMENTED,
            details: expect.stringContaining(`issue #${issue}`),
          });
        },
      );
    }
  });
}
