import * as grpc from '@grpc/grpc-js';
import { conformanceChecks, type ContractName, type Target } from './checks';

export interface CheckResult {
  name: string;
  passed: boolean;
  /** Why it failed (assertion message or gRPC status). */
  error?: string;
  durationMs: number;
}

/** Runs every check of a contract against an address (plaintext unless security says otherwise), one after the other. */
export async function runConformance(
  contract: ContractName,
  address: string,
  security: Omit<Target, 'address'> = { credentials: grpc.credentials.createInsecure() },
): Promise<CheckResult[]> {
  const target: Target = { address, ...security };
  const results: CheckResult[] = [];
  for (const check of conformanceChecks(contract)) {
    const start = Date.now();
    try {
      await check.run(target);
      results.push({ name: check.name, passed: true, durationMs: Date.now() - start });
    } catch (error) {
      results.push({
        name: check.name,
        passed: false,
        error: (error as Error).message,
        durationMs: Date.now() - start,
      });
    }
  }
  return results;
}
