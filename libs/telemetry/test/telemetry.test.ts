import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { makeTempDir, promtoolCheckMetrics } from '@medsyn/testing';
import {
  GpuSampler,
  RpcMetrics,
  createLogger,
  createMetricsRegistry,
  parseNvidiaSmiCsv,
  startMetricsServer,
} from '../src';

const tmp = makeTempDir('telemetry');
afterAll(() => tmp.remove());

/** An executable that answers like nvidia-smi on a two-GPU node (one MIG slice without utilisation). */
function fakeNvidiaSmi(): string {
  const file = path.join(tmp.dir, 'nvidia-smi');
  fs.writeFileSync(
    file,
    '#!/bin/sh\nprintf "0, NVIDIA H200, 87, 40960, 143771\\n1, NVIDIA H200 MIG 1g.18gb, [N/A], 1024, 16384\\n"\n',
    { mode: 0o755 },
  );
  return file;
}

describe('metrics endpoint', () => {
  it('serves RPC, GPU and process metrics that promtool accepts', async () => {
    const metrics = createMetricsRegistry('synthesizer');
    const rpc = new RpcMetrics(metrics);
    rpc.start('/medsyn.synthesizer.v1.SynthesizerService/Synthesize')('OK');
    rpc.start('/medsyn.synthesizer.v1.SynthesizerService/Synthesize')('INVALID_ARGUMENT');
    const open = rpc.start('/medsyn.synthesizer.v1.SynthesizerService/StartSynthesizeDataset');
    await new GpuSampler(metrics, { command: fakeNvidiaSmi() }).sampleOnce();
    const server = await startMetricsServer(metrics.registry, 0, '127.0.0.1');
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(text).toContain(
        'medsyn_synthesizer_grpc_requests_total{method="/medsyn.synthesizer.v1.SynthesizerService/Synthesize",code="OK"} 1',
      );
      expect(text).toContain(
        'medsyn_synthesizer_grpc_requests_total{method="/medsyn.synthesizer.v1.SynthesizerService/Synthesize",code="INVALID_ARGUMENT"} 1',
      );
      expect(text).toContain(
        'medsyn_synthesizer_grpc_requests_in_flight{method="/medsyn.synthesizer.v1.SynthesizerService/StartSynthesizeDataset"} 1',
      );
      expect(text).toContain('medsyn_synthesizer_gpu_utilization_ratio{gpu="0",model="NVIDIA H200"} 0.87');
      expect(text).toContain(
        `medsyn_synthesizer_gpu_memory_used_bytes{gpu="0",model="NVIDIA H200"} ${40960 * 2 ** 20}`,
      );
      expect(text).toContain(
        `medsyn_synthesizer_gpu_memory_total_bytes{gpu="1",model="NVIDIA H200 MIG 1g.18gb"} ${16384 * 2 ** 20}`,
      );
      expect(text).not.toContain('medsyn_synthesizer_gpu_utilization_ratio{gpu="1"');
      expect(text).toContain('process_cpu_seconds_total');
      expect(promtoolCheckMetrics(text)).toBe('');
      open('OK');
      expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe('GPU sampler', () => {
  it('parses nvidia-smi CSV, reading [N/A] as unknown', () => {
    expect(parseNvidiaSmiCsv('0, NVIDIA H200, 5, 10, 20\n1, X, [N/A], 1, 2\n')).toEqual([
      {
        index: '0',
        model: 'NVIDIA H200',
        utilizationRatio: 0.05,
        memoryUsedBytes: 10 * 2 ** 20,
        memoryTotalBytes: 20 * 2 ** 20,
      },
      { index: '1', model: 'X', utilizationRatio: NaN, memoryUsedBytes: 2 ** 20, memoryTotalBytes: 2 * 2 ** 20 },
    ]);
  });

  it('stays silent where there is no nvidia-smi', async () => {
    const metrics = createMetricsRegistry('pretrainer');
    const errors: string[] = [];
    const sampler = new GpuSampler(metrics, {
      command: path.join(tmp.dir, 'no-such-nvidia-smi'),
      onError: (m) => errors.push(m),
    });
    expect(await sampler.sampleOnce()).toEqual([]);
    expect(errors).toEqual([]);
    expect(await metrics.registry.metrics()).not.toMatch(/^medsyn_pretrainer_gpu_utilization_ratio\{/m);
  });

  it('reports once when nvidia-smi is present but fails', async () => {
    const broken = path.join(tmp.dir, 'broken-nvidia-smi');
    fs.writeFileSync(broken, '#!/bin/sh\necho "NVIDIA-SMI has failed" >&2\nexit 9\n', { mode: 0o755 });
    const errors: string[] = [];
    const sampler = new GpuSampler(createMetricsRegistry('pretrainer'), {
      command: broken,
      onError: (m) => errors.push(m),
    });
    await sampler.sampleOnce();
    await sampler.sampleOnce();
    expect(errors).toHaveLength(1);
  });
});

describe('logger', () => {
  it('writes one JSON object per line with the service name', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _e, done) => (lines.push(String(chunk)), done()) });
    createLogger('anonymizer', 'info', sink).info({ records: 3 }, 'batch done');
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({ service: 'anonymizer', records: 3, msg: 'batch done', level: 30 });
    expect(typeof entry.time).toBe('string');
  });
});
