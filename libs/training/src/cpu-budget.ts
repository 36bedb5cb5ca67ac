import * as fs from 'node:fs';
import * as os from 'node:os';

type ReadFile = (file: string) => string;
const readFile: ReadFile = (file) => fs.readFileSync(file, 'utf8');

/**
 * CPUs this process may use: the machine's, capped by the container's cgroup CPU quota (a
 * Kubernetes CPU limit), which os.availableParallelism() ignores in Node 20 and onnxruntime's
 * default thread count ignores too: a pod limited to 2 CPUs on a 64-core node must size its
 * workers and threads for 2. `read` is for tests.
 */
export function cpuBudget(read: ReadFile = readFile): number {
  return cpuQuotaLimit(read) ?? os.availableParallelism();
}

/** The CPU quota rounded up, when it leaves this process fewer CPUs than the machine has; else undefined. */
export function cpuQuotaLimit(read: ReadFile = readFile): number | undefined {
  const quota = cgroupCpuQuota(read);
  const cores = os.availableParallelism();
  return quota !== undefined && Math.ceil(quota) < cores ? Math.max(1, Math.ceil(quota)) : undefined;
}

/** CPUs per period the cgroup may use (cgroup v2 cpu.max, else v1's CFS quota); undefined when unlimited or unknown. */
function cgroupCpuQuota(read: ReadFile): number | undefined {
  const attempt = (file: string) => {
    try {
      return read(file).trim();
    } catch {
      return undefined;
    }
  };
  // v2: "max 100000" (no limit) or "<quota> <period>"; v1: quota -1 for no limit.
  const [quota, period] = attempt('/sys/fs/cgroup/cpu.max')?.split(' ') ?? [
    attempt('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'),
    attempt('/sys/fs/cgroup/cpu/cpu.cfs_period_us'),
  ];
  const [q, p] = [Number(quota), Number(period)];
  return q > 0 && p > 0 ? q / p : undefined;
}
