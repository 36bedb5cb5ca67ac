export { startService, runServiceMain, type ServiceSpec, type ServiceContext, type RunningService } from './server';
export { loadConfig, isLoopback, ConfigError, type KitConfig, type ServiceDefaults, type TlsFiles } from './config';
export { callSignal, invalidArgument, notImplementedYet, RpcError, toServiceError, guardImplementation } from './calls';
export { jobService, toProtoJob } from './job-rpcs';
export { telemetryInterceptor, bearerAuthInterceptor } from './interceptors';
