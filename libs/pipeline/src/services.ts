import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { common, jobs } from '@medsyn/proto';
import type { Endpoint, ServiceName } from './config';

/** Where each service the pipeline calls is, and how to reach it. */
export type Endpoints = Record<ServiceName, Endpoint>;

export interface LocalServices {
  /** Loopback endpoints; they take no TLS, and a token only where options.env gave them one. */
  endpoints: Partial<Endpoints>;
  /** Stops them gracefully (SIGTERM: running jobs persist and resume at the next start). */
  stop(): Promise<void>;
}

const REPO_ROOT = path.resolve(__dirname, '../../..');

/** How to start a service: from TypeScript sources in a checkout run through tsx, else its build. */
function serviceArgs(name: ServiceName): string[] {
  const source = path.join(REPO_ROOT, 'services', name, 'src', 'main.ts');
  const built = path.join(REPO_ROOT, 'services', name, 'dist', 'main.js');
  if (__filename.endsWith('.ts') && fs.existsSync(source))
    return ['--conditions=medsyn-source', '--import', 'tsx', source];
  if (fs.existsSync(built)) return [built];
  throw new Error(
    `cannot start the ${name} locally: no ${built} (run \`npx nx build ${name}\`) and no sources; or give services.${name}: host:port in the config`,
  );
}

/**
 * Starts the named services as child processes on free loopback ports, all on one artifact store.
 * They live as long as this process: their stdin is a pipe from us, and they shut down when it
 * ends (MEDSYN_EXIT_WITH_PARENT), even if we are killed. Their logs (ids and counts, never report
 * text) go to `<logDir>/<service>.log`.
 */
export async function startLocalServices(
  names: readonly ServiceName[],
  options: { store: string; logDir: string; env?: NodeJS.ProcessEnv },
): Promise<LocalServices> {
  fs.mkdirSync(options.logDir, { recursive: true });
  const children: ChildProcess[] = [];
  const endpoints: Partial<Endpoints> = {};
  const stop = async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
  };
  try {
    await Promise.all(
      names.map(async (name) => {
        const logFile = path.join(options.logDir, `${name}.log`);
        // The service writes its log straight to the file (not through us), so it keeps logging,
        // and stops cleanly, after we are gone; we read its `ready` line from there.
        const from = fs.existsSync(logFile) ? fs.statSync(logFile).size : 0;
        const log = fs.openSync(logFile, 'a');
        const child = spawn(process.execPath, serviceArgs(name), {
          env: {
            ...withoutServerSecurity(process.env),
            ...options.env,
            MEDSYN_STORE: options.store,
            GRPC_HOST: '127.0.0.1',
            GRPC_PORT: '0',
            METRICS_HOST: '127.0.0.1',
            METRICS_PORT: '0',
            MEDSYN_EXIT_WITH_PARENT: '1',
            MODEL_CACHE_DIR: options.env?.MODEL_CACHE_DIR ?? path.join(os.tmpdir(), 'medsyn-model-cache'),
          },
          stdio: ['pipe', log, log],
        });
        fs.closeSync(log);
        children.push(child);
        const exited = new Promise<never>((_, reject) =>
          child.once('exit', (code, signal) =>
            reject(
              new Error(`the local ${name} exited (${signal ?? `code ${code}`}) before it was ready; see ${logFile}`),
            ),
          ),
        );
        exited.catch(() => {});
        const deadline = Date.now() + 120_000;
        for (;;) {
          const ready = /"grpcPort":(\d+)[^\n]*"msg":"ready"/.exec(readFrom(logFile, from));
          if (ready) {
            endpoints[name] = { address: `127.0.0.1:${ready[1]}` };
            break;
          }
          if (Date.now() > deadline) throw new Error(`the local ${name} was not ready within 120 s; see ${logFile}`);
          await Promise.race([exited, new Promise((r) => setTimeout(r, 100))]);
        }
      }),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { endpoints, stop };
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

function readFrom(file: string, offset: number): string {
  return fs.readFileSync(file).subarray(offset).toString('utf8');
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
