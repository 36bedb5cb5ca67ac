export { startS3Server, type S3Server } from './s3-server';
export { startProcess, type ManagedProcess, type StartProcessOptions } from './process';
export { makeTempDir } from './temp';
export { sharedDataDir, hasSharedData, describeWithSharedData, itWithSharedData } from './paths';
// Defined with the service launcher; here too because tests use them beside the helpers above.
export { repoRoot, tsxLoaderArgs, healthCheck, freePort } from '@medsyn/local-services';
export { reflectionListServices, reflectionFileContainingSymbol } from './grpc-clients';
export { promtoolCheckMetrics } from './promtool';
export { makeTlsFixture, type TlsFixture } from './tls';
export { describeServiceBasics, testServiceEnv, callUnary, type ServiceBasics } from './service-basics';
export { checkOnnxModel } from './onnx-checker';
export { holdingJobs, watchJobToEnd } from './jobs';
