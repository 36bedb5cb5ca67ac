import { escapeHtml, renderReport, type EvaluationResults } from '@medsyn/evaluation';
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

const format = (v: number | string) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : v);

/**
 * The pipeline's report: what ran (stages, times, counts), real and synthetic images of the same
 * reports side by side, then the evaluator's comparison of the encoders (real vs synthetic vs
 * random init). One self-contained HTML file.
 */
export function renderPipelineReport(input: { config: ResolvedPipelineConfig; results: EvaluationResults; stages: Record<string, { seconds: number; summary: Record<string, number | string> }>; grid: GridPair[] }): string {
  const { config, results, stages, grid } = input;
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
<h2>Stages</h2>
<table><tr><th>stage</th><th>time</th><th>summary</th></tr>${stageRows.join('')}</table>
<h2>Real and synthetic images of the same reports</h2>
<table><tr><th>anonymized report</th><th>real</th><th>synthetic</th></tr>${gridRows.join('')}</table>`;
  return renderReport(results, { title: `medsyn pipeline: ${config.run}`, before });
}
