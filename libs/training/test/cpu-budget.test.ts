import * as os from 'node:os';
import { cpuBudget, cpuQuotaLimit } from '../src';

describe('the CPU budget', () => {
  const cores = os.availableParallelism();
  const files = (contents: Record<string, string>) => (file: string) => {
    if (!(file in contents)) throw new Error(`ENOENT: ${file}`);
    return contents[file]!;
  };
  it('is capped by a cgroup CPU quota (v2 cpu.max, v1 CFS), rounded up, and is the machine where there is none', () => {
    expect(cpuQuotaLimit(files({ '/sys/fs/cgroup/cpu.max': '100000 100000' }))).toBe(1);
    expect(cpuQuotaLimit(files({ '/sys/fs/cgroup/cpu.max': 'max 100000' }))).toBeUndefined();
    expect(cpuQuotaLimit(files({ '/sys/fs/cgroup/cpu.max': `${cores * 100000} 100000` }))).toBeUndefined();
    expect(cpuBudget(files({ '/sys/fs/cgroup/cpu.max': '100000 100000\n' }))).toBe(1);
    expect(cpuBudget(files({ '/sys/fs/cgroup/cpu.max': '50000 100000\n' }))).toBe(1);
    expect(cpuBudget(files({ '/sys/fs/cgroup/cpu.max': `${cores * 100000 + 1} 100000` }))).toBe(cores);
    expect(cpuBudget(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBe(cores);
    expect(
      cpuBudget(
        files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '100000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }),
      ),
    ).toBe(1);
    expect(
      cpuBudget(
        files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }),
      ),
    ).toBe(cores);
    expect(cpuBudget(files({}))).toBe(cores);
  });
});
