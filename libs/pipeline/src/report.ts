import { type TaskName } from '@medsyn/config';
import { escapeHtml, meanStd, renderReport, type EvaluationResults } from '@medsyn/evaluation-report';
import { centerCropSquare, decodeImage, encodeGrayPng } from '@medsyn/imaging';
import type { ResolvedPipelineConfig } from './config';

/** One report with its real image (where there is one) and the image synthesized from its text. */
export interface GridPair {
  id: string;
  /** The anonymized report text (what both images are paired with). */
  report: string;
  real?: Uint8Array;
  synthetic: Uint8Array;
}

const GRID_SIZE = 128;

function thumbnail(bytes: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(encodeGrayPng(centerCropSquare(decodeImage(bytes), GRID_SIZE))).toString('base64')}`;
}

type StageSummaries = Record<string, { seconds: number; summary: Record<string, number | string> }>;

/** One pre-training run of the pipeline and whether it learned: held-out retrieval above chance. */
export interface PretrainingArm {
  /** `<method>-<source>` or `<method>-<source>-seed<k>`, the encoder's name in the evaluation. */
  name: string;
  /** `<method>-<source>`: the arm whatever its seed (what the tables pool). */
  group: string;
  method: string;
  source: string;
  /** The pre-training seed, where the pipeline listed seeds (`pretrain.seeds`). */
  seed?: number;
  retrievalTop1: number;
  retrievalChance: number;
  /** Held-out pairs it was scored on (the same images for every arm of a run); absent in runs before #18. */
  retrievalPairs?: number;
  /** top-1 > chance; false also when there was no held-out set to tell (NaN). */
  learned: boolean;
  /**
   * How often chance alone retrieves at least as many pairs: the one-sided binomial tail at
   * `retrievalPairs` trials and `retrievalChance` per trial (NaN without a held-out count).
   */
  retrievalPValue: number;
}

/** P(X >= k) for X ~ Binomial(n, p), summed in log space so that large n does not underflow. */
export function binomialTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  let logTerm = 0; // log C(n, k) p^k (1 - p)^(n - k), built up from i = 0
  for (let i = 0; i < k; i++) logTerm += Math.log((n - i) / (i + 1));
  logTerm += k * Math.log(p) + (n - k) * Math.log1p(-p);
  let tail = 0;
  for (let i = k; i <= n; i++) {
    tail += Math.exp(logTerm);
    logTerm += Math.log((n - i) / (i + 1)) + Math.log(p) - Math.log1p(-p);
  }
  return Math.min(1, tail);
}

/** The pipeline's pre-training runs from its stage summaries (stages named `pretrain <method>-<source>[-seed<k>]`). */
export function pretrainingArms(stages: StageSummaries): PretrainingArm[] {
  return Object.entries(stages).flatMap(([stage, { summary }]) => {
    const match = /^pretrain (\w+)-(\w+?)(?:-seed(\d+))?$/.exec(stage);
    if (!match) return [];
    // state.json keeps NaN as null: no held-out retrieval.
    const number = (v: number | string | undefined | null) => (v === null || v === undefined ? NaN : Number(v));
    const top1 = number(summary.retrieval_top1);
    const chance = number(summary.retrieval_chance);
    const group = `${match[1]}-${match[2]}`;
    const pairs = summary.retrieval_pairs === undefined ? NaN : Number(summary.retrieval_pairs);
    return [
      {
        name: match[3] === undefined ? group : `${group}-seed${match[3]}`,
        group,
        method: match[1]!,
        source: match[2]!,
        ...(match[3] !== undefined ? { seed: Number(match[3]) } : {}),
        retrievalTop1: top1,
        retrievalChance: chance,
        ...(Number.isNaN(pairs) ? {} : { retrievalPairs: pairs }),
        learned: top1 > chance,
        retrievalPValue: Number.isFinite(pairs * top1 * chance)
          ? binomialTail(Math.round(top1 * pairs), pairs, chance)
          : NaN,
      },
    ];
  });
}

/**
 * Why arms may not be compared: an encoder whose held-out retrieval ended at or below chance did
 * not learn, and a ratio against it says nothing about real or synthetic images. A name is an
 * arm's (`convirt-real-seed1`) or a group's (`convirt-real`: every seed of it, as the pooled
 * tables compare them).
 */
export function incomparable(arms: readonly PretrainingArm[], ...names: string[]): string | undefined {
  const failed = names.flatMap((n) => arms.filter((a) => a.name === n || a.group === n)).filter((a) => !a.learned);
  const why = (a: PretrainingArm) =>
    Number.isNaN(a.retrievalTop1)
      ? `${a.name} has no held-out retrieval`
      : `${a.name} retrieval ${a.retrievalTop1.toFixed(3)} <= chance ${a.retrievalChance.toFixed(3)}`;
  return failed.length ? `${failed.map(why).join('; ')}: not compared` : undefined;
}

/** One cell of the pooled tables: a metric over every pre-training seed of an arm and every downstream seed. */
export interface PooledMetric {
  /** `<method>-<source>`, or an encoder that was not pre-trained (random-init). */
  group: string;
  task: TaskName;
  label_fraction: number;
  metric: string;
  mean: number;
  /** Sample standard deviation over the pooled runs. */
  std: number;
  /** Runs pooled: pre-training seeds x downstream seeds. */
  n: number;
}

/** An encoder's group: its name less a `-seed<k>` suffix. */
export const groupOf = (encoder: string) => encoder.replace(/-seed\d+$/, '');

/**
 * The evaluation pooled per arm: every value of an encoder group (all its pre-training seeds) at
 * a task, label fraction and metric, over all downstream seeds, as one mean ± std. Seeds of
 * pre-training and of the downstream head both vary the result, so the spread counts both.
 */
export function pooledMetrics(results: Pick<EvaluationResults, 'metrics'>): PooledMetric[] {
  const pooled = new Map<string, { cell: Omit<PooledMetric, 'mean' | 'std' | 'n'>; values: number[] }>();
  for (const m of results.metrics) {
    const cell = { group: groupOf(m.encoder), task: m.task, label_fraction: m.label_fraction, metric: m.metric };
    const key = JSON.stringify(cell);
    if (!pooled.has(key)) pooled.set(key, { cell, values: [] });
    pooled.get(key)!.values.push(...m.per_seed);
  }
  return [...pooled.values()].map(({ cell, values }) => ({ ...cell, ...meanStd(values), n: values.length }));
}

/** Synthetic over real for one method: the ratio of the pooled means. */
export interface PooledRatio {
  method: string;
  task: TaskName;
  label_fraction: number;
  metric: string;
  ratio: number;
}

/** `<method>-synthetic` over `<method>-real` for every cell both have, from the pooled means. */
export function pooledRatios(cells: readonly PooledMetric[]): PooledRatio[] {
  return cells.flatMap((s) => {
    const method = /^(\w+)-synthetic$/.exec(s.group)?.[1];
    const r =
      method &&
      cells.find(
        (c) =>
          c.group === `${method}-real` &&
          c.task === s.task &&
          c.label_fraction === s.label_fraction &&
          c.metric === s.metric,
      );
    return r
      ? [{ method: method!, task: s.task, label_fraction: s.label_fraction, metric: s.metric, ratio: s.mean / r.mean }]
      : [];
  });
}

const format = (v: number | string) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : v);

/**
 * The pipeline's report: what ran (stages, times, counts), real and synthetic images of the same
 * reports side by side, then the evaluator's comparison of the encoders (real vs synthetic vs
 * random init). One self-contained HTML file.
 */
export function renderPipelineReport(input: {
  config: ResolvedPipelineConfig;
  results: EvaluationResults;
  stages: StageSummaries;
  grid: GridPair[];
}): string {
  const { config, results, stages, grid } = input;
  const unlearned = pretrainingArms(stages).filter((a) => !a.learned);
  const warning = unlearned.length
    ? `<p><strong>Not converged:</strong> ${unlearned.map((a) => `${escapeHtml(a.name)} (held-out retrieval ${escapeHtml(format(a.retrievalTop1))}, chance ${escapeHtml(format(a.retrievalChance))})`).join(', ')} ended at or below chance. Its rows and any synthetic / real ratio involving it below measure an encoder that did not learn; train longer before comparing.</p>`
    : '';
  const stageRows = Object.entries(stages).map(
    ([name, s]) =>
      `<tr><td>${escapeHtml(name)}</td><td>${s.seconds.toFixed(0)} s</td><td>${Object.entries(s.summary)
        .map(([k, v]) => `${escapeHtml(k)} ${escapeHtml(format(v))}`)
        .join(', ')}</td></tr>`,
  );
  const gridRows = grid.map(
    (g) =>
      `<tr><td style="text-align:left;max-width:420px;font-size:12px">${escapeHtml(g.report.length > 240 ? `${g.report.slice(0, 237)}…` : g.report)}</td><td>${g.real ? `<img src="${thumbnail(g.real)}" width="${GRID_SIZE}" height="${GRID_SIZE}" alt="real">` : '—'}</td><td><img src="${thumbnail(g.synthetic)}" width="${GRID_SIZE}" height="${GRID_SIZE}" alt="synthetic"></td></tr>`,
  );
  const before = `<h1>medsyn pipeline: ${escapeHtml(config.run)}</h1>
<p>Reports were de-identified by the anonymizer (${escapeHtml(config.anonymize.mode)} mode); the synthesizer generated one image per anonymized prompt
with the model <code>${escapeHtml(config.synthesize.model)}</code>; the pretrainer trained ${config.pretrain.methods.map(escapeHtml).join(', ')} on
${config.pretrain.data.map((d) => (d === 'real' ? 'real images' : 'synthetic images')).join(' and on ')} paired with the same anonymized texts; the evaluator
compares the frozen encoders${config.evaluate.baseline ? ' and a random-init encoder of the same architecture' : ''} below.
With test sets of a few dozen images (as in the demo) the numbers are noisy: read them with their spread over seeds and the split sizes.</p>
${warning}
<h2>Stages</h2>
<table><tr><th>stage</th><th>time</th><th>summary</th></tr>${stageRows.join('')}</table>
<h2>Real and synthetic images of the same reports</h2>
<table><tr><th>anonymized report</th><th>real</th><th>synthetic</th></tr>${gridRows.join('')}</table>`;
  return renderReport(results, { title: `medsyn pipeline: ${config.run}`, before });
}
