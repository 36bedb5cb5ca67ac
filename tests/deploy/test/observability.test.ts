import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir, repoRoot } from '@medsyn/testing';
import { stringify } from 'yaml';

const observability = path.join(repoRoot, 'deploy', 'observability');

/** Runs promtool (Debian's prometheus package; .ci/run installs it); returns its exit status and output. */
function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { cwd: observability, encoding: 'utf8' });
  if (result.error)
    throw new Error(`promtool not runnable (${result.error.message}); install Debian's prometheus package`);
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

interface Panel {
  id: number;
  title: string;
  datasource: { uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets: Array<{ refId: string; expr: string; datasource: { uid: string } }>;
}

describe('alert rules', () => {
  it('pass promtool check rules', () => {
    expect(promtool('check', 'rules', 'alerts.yaml')).toEqual({
      status: 0,
      output: expect.stringContaining('SUCCESS: 4 rules found'),
    });
  });

  it('fire when they should and stay quiet when they should not (promtool test rules)', () => {
    expect(promtool('test', 'rules', 'alerts.test.yaml')).toEqual({
      status: 0,
      output: expect.stringContaining('SUCCESS'),
    });
  });
});

describe('Grafana dashboard', () => {
  const dashboard = JSON.parse(fs.readFileSync(path.join(observability, 'dashboards', 'medsyn.json'), 'utf8')) as {
    uid: string;
    panels: Panel[];
    templating: { list: Array<{ name: string }> };
  };

  it('has a query in PromQL that promtool parses for every panel, on the selected data source', () => {
    // Grafana's variables replaced as Grafana would, each query checked as a recording rule.
    const expand = (expr: string) =>
      expr
        .replaceAll('$__rate_interval', '5m')
        .replaceAll('$namespace', 'medsyn')
        .replaceAll('$service', 'anonymizer|synthesizer');
    const rules = dashboard.panels.flatMap((panel) =>
      panel.targets.map((target) => ({
        record: `dashboard:panel_${panel.id}_${target.refId}`,
        expr: expand(target.expr),
      })),
    );
    expect(rules.length).toBeGreaterThanOrEqual(dashboard.panels.length);
    const tmp = makeTempDir('dashboard-rules');
    try {
      fs.writeFileSync(path.join(tmp.dir, 'rules.yaml'), stringify({ groups: [{ name: 'dashboard', rules }] }));
      expect(promtool('check', 'rules', path.join(tmp.dir, 'rules.yaml'))).toEqual({
        status: 0,
        output: expect.stringContaining(`SUCCESS: ${rules.length} rules found`),
      });
    } finally {
      tmp.remove();
    }
    for (const panel of dashboard.panels) {
      expect(panel.datasource.uid).toBe('${datasource}');
      for (const target of panel.targets) expect(target.datasource.uid).toBe('${datasource}');
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'namespace', 'service']);
  });

  it('shows throughput, latency, errors, queue depth and GPU utilisation and memory per pod', () => {
    const queries = (title: string) =>
      dashboard.panels
        .find((p) => p.title === title)!
        .targets.map((t) => t.expr)
        .join('\n');
    expect(queries('Throughput per service')).toContain('_grpc_requests_total');
    expect(queries('Latency p50 / p95 / p99')).toContain('_grpc_request_duration_seconds_bucket');
    expect(queries('Error ratio (server errors)')).toContain('code=~"INTERNAL|');
    expect(queries('Queue depth')).toContain('_jobs"');
    expect(queries('GPU utilisation per pod')).toMatch(/DCGM_FI_DEV_GPU_UTIL[\s\S]*_gpu_utilization_ratio/);
    expect(queries('GPU memory per pod')).toMatch(/DCGM_FI_DEV_FB_USED[\s\S]*_gpu_memory_used_bytes/);
  });

  it('lays out its panels without overlap, with unique ids', () => {
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    const cells = new Set<string>();
    for (const { gridPos: g, title } of dashboard.panels) {
      expect(g.x + g.w).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          expect([title, cells.has(`${x},${y}`)]).toEqual([title, false]);
          cells.add(`${x},${y}`);
        }
      }
    }
  });
});
