import { execFile } from 'node:child_process';
import { Gauge } from 'prom-client';
import type { MetricsRegistry } from './registry';

/** One GPU as nvidia-smi reports it. */
export interface GpuReading {
  index: string;
  model: string;
  utilizationRatio: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
}

export interface GpuSamplerOptions {
  /** The nvidia-smi executable (default: found on PATH). */
  command?: string;
  intervalMs?: number;
  /** Called once if sampling fails for a reason other than nvidia-smi being absent. */
  onError?: (message: string) => void;
}

const QUERY = ['--query-gpu=index,name,utilization.gpu,memory.used,memory.total', '--format=csv,noheader,nounits'];
const MIB = 1024 * 1024;

/** Parses `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits`. */
export function parseNvidiaSmiCsv(text: string): GpuReading[] {
  const readings: GpuReading[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(',').map((f) => f.trim());
    if (fields.length !== 5) throw new Error(`unexpected nvidia-smi line with ${fields.length} fields`);
    const [index, model, utilization, used, total] = fields as [string, string, string, string, string];
    // "[N/A]" appears for values a GPU (e.g. a MIG slice) does not report.
    const number = (value: string) => (/^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN);
    readings.push({
      index,
      model,
      utilizationRatio: number(utilization) / 100,
      memoryUsedBytes: number(used) * MIB,
      memoryTotalBytes: number(total) * MIB,
    });
  }
  return readings;
}

/**
 * Exports per-GPU utilisation and memory from nvidia-smi every intervalMs. Silent where there is
 * no nvidia-smi (CPU nodes): no series, no log noise.
 */
export class GpuSampler {
  private readonly utilization: Gauge<'gpu' | 'model'>;
  private readonly memoryUsed: Gauge<'gpu' | 'model'>;
  private readonly memoryTotal: Gauge<'gpu' | 'model'>;
  private timer: NodeJS.Timeout | undefined;
  private absent = false;
  private reportedError = false;

  constructor(
    { prefix, registry }: MetricsRegistry,
    private readonly options: GpuSamplerOptions = {},
  ) {
    const labelNames = ['gpu', 'model'] as const;
    this.utilization = new Gauge({
      name: `${prefix}gpu_utilization_ratio`,
      help: 'GPU busy fraction over the last sample period (nvidia-smi utilization.gpu / 100).',
      labelNames,
      registers: [registry],
    });
    this.memoryUsed = new Gauge({
      name: `${prefix}gpu_memory_used_bytes`,
      help: 'GPU memory in use.',
      labelNames,
      registers: [registry],
    });
    this.memoryTotal = new Gauge({
      name: `${prefix}gpu_memory_total_bytes`,
      help: 'GPU memory in all.',
      labelNames,
      registers: [registry],
    });
  }

  /** Samples now and then every intervalMs until stop(). */
  start(): void {
    if (this.timer) return;
    void this.sampleOnce();
    this.timer = setInterval(() => void this.sampleOnce(), this.options.intervalMs ?? 5000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads nvidia-smi once and updates the gauges; returns what it read ([] without GPUs). */
  async sampleOnce(): Promise<GpuReading[]> {
    if (this.absent) return [];
    let readings: GpuReading[];
    try {
      readings = parseNvidiaSmiCsv(await this.query());
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') {
        this.absent = true;
        this.stop();
      } else if (!this.reportedError) {
        this.reportedError = true;
        this.options.onError?.(`GPU sampling failed: ${e.message}`);
      }
      return [];
    }
    for (const r of readings) {
      const labels = { gpu: r.index, model: r.model };
      if (Number.isFinite(r.utilizationRatio)) this.utilization.set(labels, r.utilizationRatio);
      if (Number.isFinite(r.memoryUsedBytes)) this.memoryUsed.set(labels, r.memoryUsedBytes);
      if (Number.isFinite(r.memoryTotalBytes)) this.memoryTotal.set(labels, r.memoryTotalBytes);
    }
    return readings;
  }

  private query(): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(this.options.command ?? 'nvidia-smi', QUERY, { timeout: 10000 }, (error, stdout) =>
        error ? reject(error) : resolve(stdout),
      );
    });
  }
}
