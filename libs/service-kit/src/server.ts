import * as grpc from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { openStore, type ArtifactStore } from '@medsyn/artifact-store';
import { JobRegistry, type JobRunner } from '@medsyn/jobs';
import {
  GpuSampler,
  RpcMetrics,
  createLogger,
  createMetricsRegistry,
  registerJobGauge,
  startMetricsServer,
  type Logger,
  type MetricsRegistry,
  type MetricsServer,
} from '@medsyn/telemetry';
import type { z } from 'zod';
import { jobs as jobsProto } from '@medsyn/proto';
import { guardImplementation } from './calls';
import { jobService } from './job-rpcs';
import { ConfigError, isLoopback, loadConfig, type KitConfig, type ServiceDefaults } from './config';
import { bearerAuthInterceptor, telemetryInterceptor } from './interceptors';
import { addReflection } from './reflection';

/** What a service's register() gets to build its handlers with. */
export interface ServiceContext<C = unknown> {
  config: KitConfig & { service: C };
  store: ArtifactStore;
  jobs: JobRegistry;
  logger: Logger;
  metrics: MetricsRegistry;
  /** Adds a contract's implementation; handler errors become gRPC statuses, never crashes. */
  addService<T extends object>(definition: grpc.ServiceDefinition, implementation: T): void;
  /** Runs at shutdown, after calls have drained and jobs stopped (release threads, models, files). */
  onShutdown(release: () => void | Promise<void>): void;
}

export interface ServiceSpec<E extends z.ZodRawShape = Record<never, never>> {
  /** Lower snake case: metric prefix `medsyn_<name>_`, job folder, log field. */
  name: string;
  defaults: ServiceDefaults;
  env?: NodeJS.ProcessEnv;
  /** The service's own environment variables (validated with the kit's). */
  extraConfig?: E;
  /** Job kinds this service runs, by name. */
  jobRunners?: Record<string, JobRunner>;
  register(ctx: ServiceContext<z.infer<z.ZodObject<E>>>): void | Promise<void>;
  /** Where logs go (default stdout). */
  logDestination?: Parameters<typeof createLogger>[2];
}

export interface RunningService {
  readonly grpcPort: number;
  readonly metricsPort: number;
  /** host:port a client on this machine can dial. */
  readonly target: string;
  readonly context: ServiceContext<unknown>;
  /** Stops accepting calls, drains in-flight ones up to SHUTDOWN_GRACE_SECONDS, stops jobs, releases everything. */
  shutdown(): Promise<void>;
}

/**
 * Boots a service: config from env (fails naming the bad variable), store check (fails fast),
 * gRPC server with health, reflection, optional TLS/mTLS and bearer auth, metrics on their own
 * port, GPU sampling where there is a GPU, and the job registry (resuming unfinished jobs).
 */
export async function startService<E extends z.ZodRawShape>(spec: ServiceSpec<E>): Promise<RunningService> {
  const config = loadConfig(spec.env ?? process.env, spec.defaults, spec.extraConfig);
  const logger = createLogger(spec.name, config.logLevel, spec.logDestination);
  const store = openStore(config.storeUri, spec.env ?? process.env);
  await store.check().catch((error: Error) => {
    throw new ConfigError([`MEDSYN_STORE: ${error.message}`]);
  });

  const metrics = createMetricsRegistry(spec.name);
  const rpcMetrics = new RpcMetrics(metrics);
  const gpuSampler = new GpuSampler(metrics, {
    intervalMs: config.gpuSampleIntervalMs,
    onError: (message) => logger.warn(message),
  });
  gpuSampler.start();

  const jobs = new JobRegistry({
    store,
    service: spec.name,
    runners: spec.jobRunners ?? {},
    maxRunning: config.maxRunningJobs,
    onEvent: (event) => logger.info(event, 'job'),
  });
  registerJobGauge(metrics, () => jobs.counts());

  const interceptors = [telemetryInterceptor(rpcMetrics, logger)];
  if (config.authToken) interceptors.push(bearerAuthInterceptor(config.authToken));
  const server = new grpc.Server({
    'grpc.max_receive_message_length': config.maxMessageBytes,
    'grpc.max_send_message_length': config.maxMessageBytes,
    interceptors,
  });
  const health = new HealthImplementation({ '': 'NOT_SERVING' });
  health.addToServer(server);

  const serviceNames: string[] = [];
  const releases: Array<() => void | Promise<void>> = [];
  const context: ServiceContext<z.infer<z.ZodObject<E>>> = {
    config,
    store,
    jobs,
    logger,
    metrics,
    addService(definition, implementation) {
      server.addService(
        definition,
        guardImplementation(definition, implementation) as grpc.UntypedServiceImplementation,
      );
      const firstPath = Object.values(definition)[0]!.path;
      serviceNames.push(firstPath.slice(1, firstPath.lastIndexOf('/')));
    },
    onShutdown(release) {
      releases.push(release);
    },
  };
  context.addService(jobsProto.JobServiceService, jobService(jobs));
  await spec.register(context);
  addReflection(server, serviceNames);

  const credentials = config.tls
    ? grpc.ServerCredentials.createSsl(
        config.tls.clientCa ?? null,
        [{ cert_chain: config.tls.cert, private_key: config.tls.key }],
        Boolean(config.tls.clientCa),
      )
    : grpc.ServerCredentials.createInsecure();
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${config.grpcHost}:${config.grpcPort}`, credentials, (error, port) =>
      error
        ? reject(
            new ConfigError([`GRPC_PORT: cannot listen on ${config.grpcHost}:${config.grpcPort} (${error.message})`]),
          )
        : resolve(port),
    ),
  );
  let metricsServer: MetricsServer;
  try {
    metricsServer = await startMetricsServer(metrics.registry, config.metricsPort, config.metricsHost);
  } catch (error) {
    server.forceShutdown();
    throw new ConfigError([
      `METRICS_PORT: cannot listen on ${config.metricsHost}:${config.metricsPort} (${(error as Error).message})`,
    ]);
  }

  await jobs.load();
  if (config.insecureListen && !config.tls && !config.authToken && !isLoopback(config.grpcHost)) {
    logger.warn(
      { grpcHost: config.grpcHost },
      'GRPC_INSECURE_LISTEN=true: serving without TLS or a bearer token on a non-loopback address; anyone who can reach the port can send and read reports',
    );
  }
  for (const name of ['', ...serviceNames]) health.setStatus(name, 'SERVING');
  logger.info(
    {
      grpcPort,
      metricsPort: metricsServer.port,
      grpcHost: config.grpcHost,
      tls: Boolean(config.tls),
      mutualTls: Boolean(config.tls?.clientCa),
      auth: Boolean(config.authToken),
      store: store.rootUri,
    },
    'ready',
  );

  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    (stopping ??= (async () => {
      logger.info({ graceMs: config.shutdownGraceMs }, 'shutting down');
      for (const name of ['', ...serviceNames]) health.setStatus(name, 'NOT_SERVING');
      const drained = new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true)));
      const timer = setTimeout(() => server.forceShutdown(), config.shutdownGraceMs);
      const [graceful] = await Promise.all([drained, jobs.close()]);
      clearTimeout(timer);
      await Promise.all(releases.map(async (release) => release()));
      gpuSampler.stop();
      await metricsServer.close();
      await store.close();
      logger.info({ graceful }, 'stopped');
    })());

  const host = config.grpcHost === '0.0.0.0' || config.grpcHost === '::' ? '127.0.0.1' : config.grpcHost;
  return {
    grpcPort,
    metricsPort: metricsServer.port,
    target: `${host}:${grpcPort}`,
    context: context as ServiceContext<unknown>,
    shutdown,
  };
}

/**
 * A service's entry point: start, print where it listens, and on SIGTERM/SIGINT shut down
 * gracefully and exit 0. A bad configuration exits 1 with a message naming the variable.
 */
export function runServiceMain<E extends z.ZodRawShape>(spec: ServiceSpec<E>): void {
  startService(spec).then(
    (running) => {
      const stop = () => running.shutdown().then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      // A parent that launched us as a local service (medsyn pipeline) holds our stdin open;
      // when it dies, even by SIGKILL, stdin ends and we shut down gracefully instead of lingering.
      if (process.env.MEDSYN_EXIT_WITH_PARENT === '1') process.stdin.on('end', stop).on('error', stop).resume();
    },
    (error: Error) => {
      const logger = createLogger(spec.name, 'info', spec.logDestination);
      const message = error instanceof ConfigError ? error.message : `startup failed (${error.name}): ${error.message}`;
      logger.fatal({ code: error instanceof ConfigError ? 'CONFIG' : 'STARTUP' }, message);
      logger.flush?.();
      process.exitCode = 1;
      setTimeout(() => process.exit(1), 100).unref();
    },
  );
}
