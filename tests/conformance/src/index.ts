export { CONTRACTS, conformanceChecks, type ConformanceCheck, type ContractName, type Target } from './checks';
export { runConformance, type CheckResult } from './runner';
export { startLocalServices, type LocalService, type LocalServices } from './local-services';
