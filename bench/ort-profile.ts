/**
 * Aggregates an onnxruntime profile (SessionOptions.enableProfiling: Chrome-trace JSON, one
 * `<node>_kernel_time` event per node per run) into time per op type and per node, with each
 * node's phase (forward, backward, optimizer) read off its name's scope.
 */
import * as fs from 'node:fs';

export interface ProfileRow {
  key: string;
  /** Microseconds per run (mean over the runs). */
  micros: number;
  /**
   * Sum over the row's nodes of each node's fastest run: on a shared machine, where other jobs
   * stretch some kernels of some runs, the steadier figure to compare graphs by.
   */
  floorMicros: number;
  /** Share of all kernel time. */
  share: number;
  calls: number;
}

export interface ProfileSummary {
  runs: number;
  /** Kernel time per run, microseconds (sum over nodes; with intra-op threads, not wall time). */
  totalMicros: number;
  /** Sum over nodes of each node's fastest run (see ProfileRow.floorMicros). */
  totalFloorMicros: number;
  byOp: ProfileRow[];
  byPhase: ProfileRow[];
  /** Op type within phase, e.g. `backward Conv`. */
  byPhaseOp: ProfileRow[];
  /** Backward time by the forward op type it differentiates, e.g. `Conv <- FusedMatMul`. */
  byGradientOf: ProfileRow[];
  byNode: ProfileRow[];
}

interface TraceEvent {
  cat?: string;
  name?: string;
  ts?: number;
  dur?: number;
  args?: { op_name?: string };
}

/** Backward nodes are built under the `grad` scope, the optimizer under `optimizer` (libs/training). */
export const phaseOf = (node: string) =>
  node.startsWith('grad.') ? 'backward' : node.startsWith('optimizer.') ? 'optimizer' : 'forward';

/**
 * The forward op type a backward node differentiates: autodiff names a rule's nodes
 * grad.<forward node>.<op>_<n>, and forward nodes end in their op type (`layer1.0.conv1.Conv`).
 * Gradient sums between rules have no forward node.
 */
export function gradientOf(node: string): string {
  const parts = node.split('.');
  if (parts.length < 3) return '(sums)';
  return parts.at(-2)!.replace(/_\d+$/, '');
}

/** Summary of the runs after the first `skipRuns` (warm-up: the arena grows, kernels pick algorithms). */
export function summariseProfile(file: string, skipRuns: number): ProfileSummary {
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as TraceEvent[];
  const starts = events
    .filter((e) => e.cat === 'Session' && e.name === 'model_run')
    .map((e) => e.ts!)
    .sort((a, b) => a - b);
  const runs = starts.length - skipRuns;
  if (runs < 1) throw new Error(`the profile holds ${starts.length} runs, ${skipRuns} to skip`);
  const from = starts[skipRuns]!;
  const nodes = new Map<string, { op: string; durations: number[] }>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || e.dur === undefined || e.ts! < from) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    const node = nodes.get(name) ?? { op: e.args?.op_name ?? '?', durations: [] };
    node.durations.push(e.dur);
    nodes.set(name, node);
  }
  let total = 0;
  let totalFloor = 0;
  const tables = {
    byOp: new Map<string, Acc>(),
    byPhase: new Map<string, Acc>(),
    byPhaseOp: new Map<string, Acc>(),
    byGradientOf: new Map<string, Acc>(),
    byNode: new Map<string, Acc>(),
  };
  for (const [name, { op, durations }] of nodes) {
    const micros = durations.reduce((a, b) => a + b, 0) / runs;
    const floor = Math.min(...durations);
    total += micros;
    totalFloor += floor;
    const add = (table: Map<string, Acc>, key: string) => {
      const row = table.get(key) ?? { micros: 0, floor: 0, calls: 0 };
      row.micros += micros;
      row.floor += floor;
      row.calls += durations.length / runs;
      table.set(key, row);
    };
    const phase = phaseOf(name);
    add(tables.byOp, op);
    add(tables.byPhase, phase);
    add(tables.byPhaseOp, `${phase} ${op}`);
    add(tables.byNode, `${name} (${op})`);
    if (phase === 'backward') add(tables.byGradientOf, `${gradientOf(name)} <- ${op}`);
  }
  const rows = (table: Map<string, Acc>) =>
    [...table]
      .map(([key, r]) => ({ key, micros: r.micros, floorMicros: r.floor, share: r.micros / total, calls: r.calls }))
      .sort((a, b) => b.micros - a.micros);
  return {
    runs,
    totalMicros: total,
    totalFloorMicros: totalFloor,
    byOp: rows(tables.byOp),
    byPhase: rows(tables.byPhase),
    byPhaseOp: rows(tables.byPhaseOp),
    byGradientOf: rows(tables.byGradientOf),
    byNode: rows(tables.byNode),
  };
}

interface Acc {
  micros: number;
  floor: number;
  calls: number;
}

/** Markdown table of the top rows: key, ms per step (mean and fastest), share, nodes per step. */
export function profileTable(title: string, rows: ProfileRow[], top: number): string {
  const lines = [`| ${title} | ms / step | fastest | share | nodes |`, '|---|---:|---:|---:|---:|'];
  for (const r of rows.slice(0, top))
    lines.push(
      `| ${r.key} | ${(r.micros / 1000).toFixed(1)} | ${(r.floorMicros / 1000).toFixed(1)} | ${(100 * r.share).toFixed(1)} % | ${r.calls} |`,
    );
  return lines.join('\n');
}
