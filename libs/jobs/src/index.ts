export * from './types';
export * from './errors';
export {
  JobRegistry,
  validateOutputPrefix,
  RESERVED_PREFIX,
  type JobRegistryOptions,
  type StartJobRequest,
} from './registry';
export { verifyJobInputs, type JobInput } from './inputs';
