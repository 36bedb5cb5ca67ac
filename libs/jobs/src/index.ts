export * from './types';
export * from './errors';
export { JobRegistry, canonicalDigest, type JobRegistryOptions, type StartJobRequest } from './registry';
