/**
 * What the machine was doing while a benchmark ran. These machines are shared: a ratio taken
 * while the load average exceeds the threads the benchmark uses is not to be quoted, and every
 * RESULT says whether its run was quotable.
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

export interface LoadReport {
  /** 1-minute load average: highest and mean of the samples taken during the run. */
  load_max: number;
  load_mean: number;
  cores: number;
  /** Threads the measured work uses (ours and the peer's, the larger). */
  threads: number;
  /** The load stayed at or below the thread count for the whole run. */
  quotable: boolean;
}

/** Samples the 1-minute load average every 5 s from now on; `report` ends the sampling. */
export function watchLoad(threads: number): { report: () => LoadReport } {
  const samples = [os.loadavg()[0]!];
  const timer = setInterval(() => samples.push(os.loadavg()[0]!), 5000);
  timer.unref();
  return {
    report: () => {
      clearInterval(timer);
      samples.push(os.loadavg()[0]!);
      const round = (x: number) => Math.round(x * 100) / 100;
      const max = Math.max(...samples);
      const report = {
        load_max: round(max),
        load_mean: round(samples.reduce((a, b) => a + b, 0) / samples.length),
        cores: os.cpus().length,
        threads,
        quotable: max <= threads,
      };
      console.log(
        `load average during the run: max ${report.load_max}, mean ${report.load_mean} on ${report.cores} cores, ${threads} thread(s) measured: ${report.quotable ? 'quotable' : 'NOT quotable (load above the thread count)'}`,
      );
      return report;
    },
  };
}

/** The median (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Runs a peer script of bench/python/ with its JSON config as the one argument and returns the
 * JSON of its last output line. Debian's python3 (PyTorch 1.13) unless another interpreter is given.
 */
export function runPythonPeer<T>(script: string, config: unknown, python = '/usr/bin/python3'): T {
  const out = execFileSync(python, [path.join(__dirname, 'python', script), JSON.stringify(config)], {
    encoding: 'utf8',
  });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}
