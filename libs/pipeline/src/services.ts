import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { serviceNodeArgs, startServiceProcesses } from '@medsyn/local-services';
import { common, jobs } from '@medsyn/proto';
import type { Endpoint, ServiceName } from './config';

/** Where each service the pipeline calls is, and how to reach it. */
export type Endpoints = Record<ServiceName, Endpoint>;

export interface LocalServices {
  /** Loopback endpoints; TLS and a token only where options gave them. */
  endpoints: Partial<Endpoints>;
  /** Stops them gracefully (SIGTERM: running jobs persist and resume at the next start). */
  stop(): Promise<void>;
}

/**
 * Starts the named services as child processes on free loopback ports, all on one artifact store,
 * from their TypeScript sources when we run from ours (a checkout), else from their builds. They
 * live no longer than this process (see startServiceProcess). Their logs (ids and counts, never
 * report text) go to `<logDir>/<service>.log`.
 */
export async function startLocalServices(
  names: readonly ServiceName[],
  options: {
    store: string;
    logDir: string;
    env?: NodeJS.ProcessEnv;
    /** The client side of the TLS that options.env turns on (tests): its CA, a client certificate for mutual TLS. */
    tls?: ClientSecurity['tls'];
  },
): Promise<LocalServices> {
  fs.mkdirSync(options.logDir, { recursive: true });
  const from = __filename.endsWith('.ts') ? 'source' : 'dist';
  const { credentials } = clientSecurity({ tls: options.tls });
  const services = await startServiceProcesses(
    names.map((name) => ({
      name,
      args: serviceNodeArgs(name, from),
      env: {
        ...withoutServerSecurity(process.env),
        ...options.env,
        MEDSYN_STORE: options.store,
        GRPC_HOST: '127.0.0.1',
        METRICS_HOST: '127.0.0.1',
        MODEL_CACHE_DIR: options.env?.MODEL_CACHE_DIR ?? path.join(os.tmpdir(), 'medsyn-model-cache'),
      },
      logFile: path.join(options.logDir, `${name}.log`),
      credentials,
    })),
  );
  return {
    endpoints: Object.fromEntries(
      services.map((s) => [s.name, { address: s.target, ...(options.tls && { tls: options.tls }) }]),
    ),
    stop: async () => {
      await Promise.all(services.map((s) => s.stop()));
    },
  };
}

/**
 * Our own environment less the services' TLS and token variables: the pipeline talks to its local
 * services over loopback with neither, so a GRPC_AUTH_TOKEN meant for some other process here
 * must not make them refuse it.
 */
function withoutServerSecurity(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !/^GRPC_(TLS_|AUTH_TOKEN)/.test(k)));
}

/** How a client proves itself to a medsyn service: TLS files (a CA; a client certificate for mutual TLS) and a bearer token, each optional. */
export interface ClientSecurity {
  tls?: { ca: string; cert?: string; key?: string };
  token?: string;
}

/**
 * The credentials for a channel: TLS with its CA (and a client certificate for mutual TLS) or
 * plaintext, and, with a token, `authorization: Bearer <token>` on every call (the header
 * service-kit's bearerAuthInterceptor checks). grpc-js composes call credentials with TLS only,
 * so over plaintext the header is added by a client interceptor.
 */
export function clientSecurity({ tls, token }: ClientSecurity): {
  credentials: grpc.ChannelCredentials;
  options: grpc.ClientOptions;
} {
  const authorization = `Bearer ${token}`;
  if (tls) {
    const ssl = grpc.credentials.createSsl(
      fs.readFileSync(tls.ca),
      tls.key ? fs.readFileSync(tls.key) : null,
      tls.cert ? fs.readFileSync(tls.cert) : null,
    );
    if (!token) return { credentials: ssl, options: {} };
    const bearer = grpc.credentials.createFromMetadataGenerator((_, callback) => {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', authorization);
      callback(null, metadata);
    });
    return { credentials: grpc.credentials.combineChannelCredentials(ssl, bearer), options: {} };
  }
  if (!token) return { credentials: grpc.credentials.createInsecure(), options: {} };
  const addBearer: grpc.Interceptor = (options, next) =>
    new grpc.InterceptingCall(next(options), {
      start(metadata, listener, nextStart) {
        metadata.set('authorization', authorization);
        nextStart(metadata, listener);
      },
    });
  return { credentials: grpc.credentials.createInsecure(), options: { interceptors: [addBearer] } };
}

/** clientSecurity for a configured endpoint, its token read from the variable the endpoint names. */
export function channelSecurity(
  endpoint: Endpoint,
  env: NodeJS.ProcessEnv = process.env,
): { credentials: grpc.ChannelCredentials; options: grpc.ClientOptions } {
  const token = endpoint.tokenEnv ? env[endpoint.tokenEnv] : undefined;
  if (endpoint.tokenEnv && !token)
    throw new Error(`the environment variable ${endpoint.tokenEnv} (the token for ${endpoint.address}) is not set`);
  return clientSecurity({ tls: endpoint.tls, token });
}

/** A generated grpc-js client for endpoint, with its TLS and token (see channelSecurity). */
export function connect<C extends grpc.Client>(
  Client: new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => C,
  endpoint: Endpoint,
  env: NodeJS.ProcessEnv = process.env,
): C {
  const { credentials, options } = channelSecurity(endpoint, env);
  return new Client(endpoint.address, credentials, options);
}

/** Promise form of a unary call. */
export function unary<Req, Res>(client: grpc.Client, method: string, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    (client as unknown as Record<string, (r: Req, cb: (e: grpc.ServiceError | null, res: Res) => void) => void>)[
      method
    ]!.call(client, request, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

/** A job ended in FAILED or CANCELLED: its error detail, as the service reported it (no report text). */
export class JobFailedError extends Error {
  override name = 'JobFailedError';
  constructor(readonly job: common.Job) {
    const e = job.error;
    super(
      `job ${job.jobId} ${job.state === common.JobState.JOB_STATE_CANCELLED ? 'was cancelled' : 'failed'}${e ? `: ${[e.code, e.field && `field ${e.field}`, e.recordId && `record ${e.recordId}`].filter(Boolean).join(', ')}: ${e.message}` : ''}`,
    );
  }
}

const TERMINAL = new Set([
  common.JobState.JOB_STATE_SUCCEEDED,
  common.JobState.JOB_STATE_FAILED,
  common.JobState.JOB_STATE_CANCELLED,
]);

/**
 * Follows a job through JobService.WatchJob until it ends, reporting progress. A dropped stream
 * (a service restarting) is re-watched for up to `retryMs`; the job itself lives in the store.
 */
export async function waitForJob(
  endpoint: Endpoint,
  jobId: string,
  onProgress: (job: common.Job) => void,
  options: { retryMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<common.Job> {
  const client = connect(jobs.JobServiceClient, endpoint, options.env);
  const address = endpoint.address;
  const retryMs = options.retryMs ?? 120_000;
  let lastContact = Date.now();
  try {
    for (;;) {
      const ended = await new Promise<common.Job | undefined>((resolve, reject) => {
        let latest: common.Job | undefined;
        const stream = client.watchJob({ jobId });
        stream.on('data', (response: jobs.WatchJobResponse) => {
          lastContact = Date.now();
          latest = response.job;
          if (latest) onProgress(latest);
        });
        stream.on('error', (error: grpc.ServiceError) =>
          error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.CANCELLED
            ? resolve(undefined)
            : reject(error),
        );
        stream.on('end', () => resolve(latest && TERMINAL.has(latest.state) ? latest : undefined));
      });
      if (ended) {
        if (ended.state !== common.JobState.JOB_STATE_SUCCEEDED) throw new JobFailedError(ended);
        return ended;
      }
      if (Date.now() - lastContact > retryMs)
        throw new Error(`lost contact with the service at ${address} while following job ${jobId}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    client.close();
  }
}
