export {
  startServiceProcess,
  startServiceProcesses,
  serviceNodeArgs,
  tsxLoaderArgs,
  freePort,
  repoRoot,
  type ServiceProcess,
  type ServiceProcessOptions,
} from './service-process';
export { healthCheck } from './health';
