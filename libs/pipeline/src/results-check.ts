import type { EvaluationResults } from '@medsyn/evaluation-report';
import { pooledMetrics, pooledRatios, type PooledMetric } from './report';

/** One marked figure of a results document, and what the run's files say it should read. */
export interface ResultsFigure {
  /** 1-based line of the document. */
  line: number;
  /** The marker's figure name (`segmentation/dice/1%/random-init`, `$.dataset.images`, a table cell). */
  figure: string;
  /** As the document quotes it. */
  quoted: string;
  /** As the files give it, at the quoted precision (or why there is no such figure). */
  expected: string;
  ok: boolean;
}

export interface ResultsCheck {
  figures: ResultsFigure[];
  mismatches: ResultsFigure[];
}

// A marker quoted in inline code (`<!-- ... -->`, as the convention is documented) is an example, not a marker.
const MARKER = /(?<!`)<!--\s*(results|state)\.json:\s*(.+?)\s*-->/g;
const NUMBER = '-?\\d+(?:\\.\\d+)?';
const FIGURE = new RegExp(`^\\s*\\**\\s*(${NUMBER})(?:\\s*±\\s*(${NUMBER}))?`);
const CELL = new RegExp(`^\\**\\s*(${NUMBER})(?:\\s*±\\s*(${NUMBER}))?\\s*\\**$`);
const NAMED = /^(\w+)\/(.+)\/(\d+(?:\.\d+)?) ?%\/([\w-]+?)(\/real)?$/;

const decimals = (quoted: string) => quoted.split('.')[1]?.length ?? 0;
/** The value written as the document wrote its figure: the same number of decimals. */
const atPrecisionOf = (value: number, quoted: string) =>
  Number.isFinite(value) ? value.toFixed(decimals(quoted)) : String(value);

/** `$.a.b[0]["key with spaces"]` in a JSON value; undefined where the path leads nowhere. */
function atPath(value: unknown, path: string): unknown {
  if (!path.startsWith('$')) return undefined;
  const step = /\.([A-Za-z_][\w-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]/y;
  step.lastIndex = 1;
  let at = value;
  while (step.lastIndex < path.length) {
    const m = step.exec(path);
    if (!m) return undefined;
    const key = m[1] ?? (m[2] !== undefined ? Number(m[2]) : JSON.parse(`"${m[3]}"`));
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<string | number, unknown>)[key];
  }
  return at;
}

/**
 * Checks the figures a results document marks against the run that produced them: the
 * evaluation's results.json (pooled per arm over pre-training and downstream seeds, as the
 * replication's tables are) and the pipeline's state.json. The convention (docs/results.md,
 * "Checked figures"):
 *
 * - `<!-- results.json: table <task> <metric> -->` before a Markdown table: each cell in a row
 *   `<N> %` under a column named after an encoder group (`convirt-real`, `random-init`) is that
 *   group's pooled `mean ± std`; under `<method>-synthetic / real`, the ratio of pooled means.
 *   Cells `—` and those that say `not compared` are not figures.
 * - `<!-- results.json: <task>/<metric>/<N>%/<group> -->` right before a figure (`0.338` or
 *   `0.338 ± 0.205`); `<group>` `<method>-synthetic/real` is the ratio.
 * - `<!-- results.json: $.dataset.images -->` or `<!-- state.json: $.stages["pretrain
 *   convirt-real"].summary.retrieval_top1 -->` right before a figure: the value at that path.
 *
 * A figure matches when the value, written with the figure's number of decimals, reads the same.
 */
export function checkResultsDoc(
  markdown: string,
  files: { results: Pick<EvaluationResults, 'metrics'>; state?: unknown },
): ResultsCheck {
  const cells = pooledMetrics(files.results);
  const ratios = pooledRatios(cells);
  const lines = markdown.split('\n');
  const figures: ResultsFigure[] = [];
  const lineOf = (offset: number) => markdown.slice(0, offset).split('\n').length;
  const pooled = (
    task: string,
    metric: string,
    percent: number,
    group: string,
  ): { mean: number; std?: number } | undefined => {
    const at = (c: { task: string; metric: string; label_fraction: number }) =>
      c.task === task && c.metric === metric && Math.abs(c.label_fraction * 100 - percent) < 1e-6;
    const ratio = /^(\w+)-synthetic \/ ?real$/.exec(group);
    if (ratio) {
      const r = ratios.find((x) => x.method === ratio[1] && at(x));
      return r && { mean: r.ratio };
    }
    const cell: PooledMetric | undefined = cells.find((c) => c.group === group && at(c));
    return cell && { mean: cell.mean, std: cell.std };
  };
  const compare = (
    line: number,
    figure: string,
    quoted: { mean: string; std?: string },
    value: { mean: number; std?: number } | undefined,
  ) => {
    const text = quoted.std === undefined ? quoted.mean : `${quoted.mean} ± ${quoted.std}`;
    if (!value) return figures.push({ line, figure, quoted: text, expected: 'no such figure in the files', ok: false });
    const expected =
      quoted.std === undefined
        ? atPrecisionOf(value.mean, quoted.mean)
        : `${atPrecisionOf(value.mean, quoted.mean)} ± ${value.std === undefined ? 'no spread' : atPrecisionOf(value.std, quoted.std)}`;
    figures.push({ line, figure, quoted: text, expected, ok: expected === text });
  };

  for (const marker of markdown.matchAll(MARKER)) {
    const [whole, file, name] = marker as unknown as [string, 'results' | 'state', string];
    const line = lineOf(marker.index!);
    const table = /^table (\w+) (\S+)$/.exec(name);
    if (file === 'results' && table) {
      checkTable(lines, line, table[1]!, table[2]!, pooled, compare, figures);
      continue;
    }
    const after = FIGURE.exec(markdown.slice(marker.index! + whole.length));
    if (!after) {
      figures.push({ line, figure: name, quoted: '(nothing)', expected: 'a figure right after the marker', ok: false });
      continue;
    }
    const quoted = { mean: after[1]!, ...(after[2] !== undefined ? { std: after[2] } : {}) };
    if (name.startsWith('$')) {
      const source = file === 'results' ? files.results : files.state;
      const value = source === undefined ? undefined : atPath(source, name);
      compare(line, `${file}.json ${name}`, quoted, typeof value === 'number' ? { mean: value } : undefined);
      continue;
    }
    const named = NAMED.exec(name);
    if (file !== 'results' || !named) {
      figures.push({
        line,
        figure: name,
        quoted: quoted.mean,
        expected: 'a figure name <task>/<metric>/<N>%/<group>, a table marker or a $.path',
        ok: false,
      });
      continue;
    }
    compare(
      line,
      name,
      quoted,
      pooled(
        named[1]!,
        named[2]!,
        Number(named[3]),
        named[5] ? `${named[4]!.replace(/-synthetic$/, '')}-synthetic / real` : named[4]!,
      ),
    );
  }
  return { figures, mismatches: figures.filter((f) => !f.ok) };
}

type Pooled = (
  task: string,
  metric: string,
  percent: number,
  group: string,
) => { mean: number; std?: number } | undefined;
type Compare = (
  line: number,
  figure: string,
  quoted: { mean: string; std?: string },
  value: { mean: number; std?: number } | undefined,
) => void;

/** The Markdown table after a `table` marker on line `markerLine` (1-based), cell by cell. */
function checkTable(
  lines: string[],
  markerLine: number,
  task: string,
  metric: string,
  pooled: Pooled,
  compare: Compare,
  figures: ResultsFigure[],
): void {
  let i = markerLine; // the line after the marker (0-based index = 1-based line)
  while (i < lines.length && !lines[i]!.trim().startsWith('|')) {
    if (lines[i]!.trim() !== '' && !lines[i]!.trim().startsWith('<!--')) break;
    i++;
  }
  const row = (text: string) =>
    text
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim());
  if (i >= lines.length || !lines[i]!.trim().startsWith('|')) {
    figures.push({
      line: markerLine,
      figure: `table ${task} ${metric}`,
      quoted: '(no table)',
      expected: 'a Markdown table right after the marker',
      ok: false,
    });
    return;
  }
  const header = row(lines[i]!);
  for (let r = i + 2; r < lines.length && lines[r]!.trim().startsWith('|'); r++) {
    const cells = row(lines[r]!);
    const percent = /^(\d+(?:\.\d+)?) ?%$/.exec(cells[0] ?? '');
    if (!percent) continue;
    header.forEach((column, c) => {
      if (c === 0) return;
      const cell = cells[c] ?? '';
      if (cell === '—' || cell === '-' || /not compared/.test(cell)) return;
      const figure = `${task}/${metric}/${percent[1]}%/${column}`;
      const quoted = CELL.exec(cell);
      if (!quoted) {
        figures.push({ line: r + 1, figure, quoted: cell, expected: 'a figure, "—" or "not compared"', ok: false });
        return;
      }
      compare(
        r + 1,
        figure,
        { mean: quoted[1]!, ...(quoted[2] !== undefined ? { std: quoted[2] } : {}) },
        pooled(task, metric, Number(percent[1]), column),
      );
    });
  }
}
