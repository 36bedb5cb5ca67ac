import type { TaskName } from '@medsyn/config';
import type { EvaluationResults } from '@medsyn/evaluation-report';
import { groupOf, incomparable, pooledMetrics, pooledRatios, pretrainingArms } from './report';

const formatP = (p: number) => (p < 0.001 ? '< 0.001' : p.toFixed(3));
const cell = (m?: { mean: number; std: number }) => (m ? `${m.mean.toFixed(3)} ± ${m.std.toFixed(3)}` : '—');

/**
 * Markdown, as `npm run experiment:replication` prints it: per task, the main metric by label
 * fraction for every arm (its pre-training seeds and the downstream seeds pooled) and
 * synthetic/real per method (of the pooled means); then whether each arm learned, the stages and
 * the digests. Each table carries the marker `npm run check:results` reads, so that
 * docs/results.md can quote it checked.
 */
export function renderComparisonTables(
  results: EvaluationResults,
  stages: Record<string, { seconds: number; summary: Record<string, number | string> }>,
  options: { tasks: readonly TaskName[]; metrics: Record<string, string> },
): string {
  const groups = [...new Set(results.encoders.map((e) => groupOf(e.name)))];
  const cells = pooledMetrics(results);
  const ratios = pooledRatios(cells);
  const arms = pretrainingArms(stages);
  const seedsOf = (group: string) => Math.max(1, arms.filter((a) => a.group === group).length);
  const downstream = results.config.seeds.length;
  const lines: string[] = [];
  for (const task of options.tasks) {
    const metric = options.metrics[task]!;
    const fractions = [...new Set(cells.filter((m) => m.task === task).map((m) => m.label_fraction))].sort(
      (a, b) => a - b,
    );
    const methods = [...new Set(ratios.filter((r) => r.task === task).map((r) => r.method))];
    const pretrained = groups.find((g) => g !== 'random-init');
    lines.push(
      `### ${task} (${metric}; mean ± std of ${pretrained ? seedsOf(pretrained) * downstream : downstream} runs per pre-trained arm: ${pretrained ? seedsOf(pretrained) : 0} pre-training seeds x downstream seeds ${results.config.seeds.join(', ')}; random-init ${downstream} runs; split ${JSON.stringify(results.splits[task])})`,
      '',
      `<!-- results.json: table ${task} ${metric} -->`,
    );
    lines.push(`| labels | ${groups.join(' | ')} | ${methods.map((m) => `${m}-synthetic / real`).join(' | ')} |`);
    lines.push(`|---|${groups.map(() => '---').join('|')}|${methods.map(() => '---').join('|')}|`);
    for (const f of fractions) {
      const get = (group: string) =>
        cells.find((m) => m.group === group && m.task === task && m.label_fraction === f && m.metric === metric);
      // A ratio involving an arm any seed of which did not learn (retrieval at chance) is refused, not printed.
      const shown = methods.map((method) => {
        const r = ratios.find(
          (x) => x.method === method && x.task === task && x.label_fraction === f && x.metric === metric,
        );
        return r ? (incomparable(arms, `${method}-synthetic`, `${method}-real`) ?? r.ratio.toFixed(3)) : '—';
      });
      lines.push(
        `| ${Math.round(f * 100)} % | ${groups.map((g) => cell(get(g))).join(' | ')} | ${shown.join(' | ')} |`,
      );
    }
    lines.push('');
  }
  const pairs = [...new Set(arms.map((a) => a.retrievalPairs))];
  lines.push(
    `### Pre-training: did each arm learn? (image-to-text retrieval on the same ${pairs.join(' / ')} held-out real images for every arm, against chance; p: how often chance alone retrieves as many, one-sided binomial)`,
    '',
    '| arm | seed | top-1 | chance | held-out pairs | p | learned |',
    '|---|---|---|---|---|---|---|',
  );
  for (const a of arms)
    lines.push(
      `| ${a.group} | ${a.seed ?? '—'} | ${a.retrievalTop1.toFixed(3)} | ${a.retrievalChance.toFixed(3)} | ${a.retrievalPairs ?? '—'} | ${Number.isNaN(a.retrievalPValue) ? '—' : formatP(a.retrievalPValue)} | ${a.learned ? 'yes' : '**no: not compared**'} |`,
    );
  lines.push('', '### Stages', '', '| run | seconds | summary |', '|---|---|---|');
  for (const [name, s] of Object.entries(stages))
    lines.push(
      `| ${name} | ${s.seconds.toFixed(0)} | ${Object.entries(s.summary)
        .map(([k, v]) => `${k} ${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(3) : v}`)
        .join(', ')} |`,
    );
  lines.push(
    '',
    '### Digests',
    '',
    `- dataset (as evaluated): ${results.dataset.sha256} (${results.dataset.images} images)`,
  );
  for (const e of results.encoders)
    lines.push(
      `- ${e.name}: ${Object.entries(e.digests)
        .map(([f, d]) => `${f} ${d.slice(0, 16)}…`)
        .join(', ')}`,
    );
  return lines.join('\n');
}
