import type { EvaluationResults, MetricSummary, ReportSample } from './results';

const escape = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const TASK_TITLES: Record<string, string> = {
  classification: 'Linear-probe classification',
  segmentation: 'Segmentation (U-Net decoder)',
  detection: 'Detection (FCOS head)',
  zero_shot: 'Zero-shot classification',
};

const pct = (f: number) => (f === 0 ? 'zero-shot' : `${+(f * 100).toFixed(2)}%`);
const fmt = (m: MetricSummary | undefined) =>
  m && Number.isFinite(m.mean) ? `${m.mean.toFixed(3)} ± ${m.std.toFixed(3)}` : '—';

/** Rows: encoders; columns: label fractions; one table per task and headline metric. */
function metricTables(results: EvaluationResults): string {
  const out: string[] = [];
  for (const task of results.config.tasks) {
    const metrics = [
      ...new Set(results.metrics.filter((m) => m.task === task && !m.metric.includes('/')).map((m) => m.metric)),
    ];
    const fractions = [...new Set(results.metrics.filter((m) => m.task === task).map((m) => m.label_fraction))].sort(
      (a, b) => a - b,
    );
    out.push(`<h3>${escape(TASK_TITLES[task] ?? task)}</h3>`);
    for (const metric of metrics) {
      out.push(
        `<table><caption>${escape(metric)} (mean ± std over ${results.config.seeds.length} seed(s))</caption><tr><th>encoder</th><th>pre-training data</th>${fractions.map((f) => `<th>${pct(f)}</th>`).join('')}</tr>`,
      );
      for (const e of results.encoders) {
        const cells = fractions.map(
          (f) =>
            `<td>${fmt(results.metrics.find((m) => m.encoder === e.name && m.task === task && m.label_fraction === f && m.metric === metric))}</td>`,
        );
        out.push(`<tr><td>${escape(e.name)}</td><td>${escape(e.pretraining_data)}</td>${cells.join('')}</tr>`);
      }
      out.push('</table>');
    }
    const perClass = results.metrics.filter((m) => m.task === task && m.metric.startsWith('auroc/'));
    if (perClass.length && results.dataset.classes.length > 1) {
      const largest = Math.max(...perClass.map((m) => m.label_fraction));
      out.push(
        `<table><caption>AUROC per class at ${pct(largest)}</caption><tr><th>encoder</th>${results.dataset.classes.map((c) => `<th>${escape(c)}</th>`).join('')}</tr>`,
      );
      for (const e of results.encoders) {
        out.push(
          `<tr><td>${escape(e.name)}</td>${results.dataset.classes.map((c) => `<td>${fmt(perClass.find((m) => m.encoder === e.name && m.label_fraction === largest && m.metric === `auroc/${c}`))}</td>`).join('')}</tr>`,
        );
      }
      out.push('</table>');
    }
  }
  for (const skip of results.skipped ?? [])
    out.push(
      `<p>${escape(TASK_TITLES[skip.task] ?? skip.task)}: no row for ${escape(skip.encoder)} (${escape(skip.reason)}).</p>`,
    );
  if (results.ratios.length) {
    out.push(
      '<h3>Synthetic / real</h3><table><tr><th>task</th><th>fraction</th><th>metric</th><th>synthetic / real</th><th>ratio</th></tr>',
    );
    for (const r of results.ratios.filter((x) => !x.metric.includes('/')))
      out.push(
        `<tr><td>${r.task}</td><td>${pct(r.label_fraction)}</td><td>${escape(r.metric)}</td><td>${escape(r.synthetic)} / ${escape(r.real)}</td><td>${r.ratio.toFixed(3)}</td></tr>`,
      );
    out.push('</table>');
  }
  return out.join('\n');
}

/** ROC curves of every encoder for one class, as inline SVG (unit square, diagonal for chance). */
function rocSvg(results: EvaluationResults): string {
  const encoders = Object.keys(results.roc);
  if (!encoders.length) return '';
  const classes = results.dataset.classes;
  const S = 220;
  const charts = classes.map((className, c) => {
    const lines = encoders.map((name, k) => {
      const curve = results.roc[name]![c];
      if (!curve) return '';
      const points = curve.fpr.map((x, i) => `${(x * S).toFixed(1)},${((1 - curve.tpr[i]!) * S).toFixed(1)}`).join(' ');
      return `<polyline fill="none" stroke="${COLORS[k % COLORS.length]}" stroke-width="2" points="${points}"><title>${escape(name)}: AUROC ${curve.auroc.toFixed(3)}</title></polyline>`;
    });
    const legend = encoders.map(
      (name, k) =>
        `<text x="${S - 4}" y="${S - 8 - 14 * (encoders.length - 1 - k)}" text-anchor="end" font-size="11" fill="${COLORS[k % COLORS.length]}">${escape(name)} ${results.roc[name]![c] ? results.roc[name]![c]!.auroc.toFixed(3) : ''}</text>`,
    );
    return `<figure><svg viewBox="-30 -10 ${S + 40} ${S + 40}" width="${S + 40}" height="${S + 40}" role="img" aria-label="ROC ${escape(className)}">
<rect x="0" y="0" width="${S}" height="${S}" fill="#fff" stroke="#999"/><line x1="0" y1="${S}" x2="${S}" y2="0" stroke="#ccc" stroke-dasharray="4"/>
${lines.join('\n')}${legend.join('')}
<text x="${S / 2}" y="${S + 24}" text-anchor="middle" font-size="11">false positive rate</text><text x="-18" y="${S / 2}" transform="rotate(-90 -18 ${S / 2})" text-anchor="middle" font-size="11">true positive rate</text>
</svg><figcaption>${escape(className)}</figcaption></figure>`;
  });
  return `<h3>ROC curves (test set, largest fraction, first seed)</h3><div class="grid">${charts.join('\n')}</div>`;
}

// Masks are gray PNGs tinted by an SVG colour matrix: white pixels become the colour at 45 % opacity.
const TINT = (id: string, r: number, g: number, b: number) =>
  `<filter id="${id}"><feColorMatrix type="matrix" values="0 0 0 0 ${r} 0 0 0 0 ${g} 0 0 0 0 ${b} 0.45 0 0 0 0"/></filter>`;

function sampleFigure(sample: ReportSample, uid: string): string {
  const width = sample.size;
  const height = sample.size;
  const layers = [`<image href="${sample.image}" width="${width}" height="${height}"/>`];
  if (sample.truthMask)
    layers.push(`<image href="${sample.truthMask}" width="${width}" height="${height}" filter="url(#truth)"/>`);
  if (sample.predictedMask)
    layers.push(`<image href="${sample.predictedMask}" width="${width}" height="${height}" filter="url(#pred)"/>`);
  for (const b of sample.truthBoxes ?? [])
    layers.push(
      `<rect x="${b.x}" y="${b.y}" width="${b.width}" height="${b.height}" fill="none" stroke="#2ca02c" stroke-width="1"/>`,
    );
  for (const b of sample.predictedBoxes ?? [])
    layers.push(
      `<rect x="${b.x}" y="${b.y}" width="${b.width}" height="${b.height}" fill="none" stroke="#d62728" stroke-width="${0.5 + b.score}" stroke-dasharray="2"><title>score ${b.score.toFixed(2)}</title></rect>`,
    );
  return `<figure><svg viewBox="0 0 ${width} ${height}" width="160" height="160" id="${uid}">${layers.join('')}</svg><figcaption>${escape(sample.id.length > 28 ? `${sample.id.slice(0, 25)}…` : sample.id)}</figcaption></figure>`;
}

function samples(results: EvaluationResults): string {
  const out: string[] = [];
  let uid = 0;
  for (const [encoder, s] of Object.entries(results.samples)) {
    if (s.segmentation?.length)
      out.push(
        `<h4>${escape(encoder)}: segmentation (green truth, red prediction)</h4><div class="grid">${s.segmentation.map((x) => sampleFigure(x, `s${uid++}`)).join('')}</div>`,
      );
    if (s.detection?.length)
      out.push(
        `<h4>${escape(encoder)}: detection (green truth, red dashed predictions; width = score)</h4><div class="grid">${s.detection.map((x) => sampleFigure(x, `s${uid++}`)).join('')}</div>`,
      );
  }
  return out.length ? `<h3>Sample test images (largest fraction, first seed)</h3>${out.join('\n')}` : '';
}

function grids(results: EvaluationResults): string {
  const entries = Object.entries(results.grids ?? {});
  if (!entries.length) return '';
  const rows = entries.map(
    ([name, images]) =>
      `<h4>${escape(name)}</h4><div class="grid">${images.map((im) => `<figure><img src="${im.png}" width="96" height="96" alt="${escape(im.file)}"><figcaption>${escape(im.file.length > 18 ? `${im.file.slice(0, 15)}…` : im.file)}</figcaption></figure>`).join('')}</div>`,
  );
  return `<h2>Sample images</h2>${rows.join('\n')}`;
}

/** Escapes text for HTML (for callers that wrap the report with their own sections). */
export const escapeHtml = escape;

/**
 * A self-contained HTML report: no external files, images inline as PNG data URIs, charts as SVG.
 * `before` is HTML placed ahead of the evaluation (e.g. the pipeline's summary), `title` the page title.
 */
export function renderReport(results: EvaluationResults, wrap: { title?: string; before?: string } = {}): string {
  const digests = results.encoders.map(
    (e) =>
      `<tr><td>${escape(e.name)}</td><td>${escape(e.method)} / ${escape(e.architecture)} @ ${e.input_size}px</td><td><code>${Object.entries(
        e.digests,
      )
        .map(([f, d]) => `${escape(f)} ${d}`)
        .join('<br>')}</code></td><td>${e.encode_seconds.toFixed(1)} s</td></tr>`,
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(wrap.title ?? `medsyn evaluation: ${results.dataset.name}`)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0 1.2em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th:first-child,td:first-child,td:nth-child(2){text-align:left}
caption{text-align:left;font-weight:600;padding:.2em 0}.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:11px;color:#555;text-align:center}
pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:12px}code{font-size:11px;word-break:break-all}
</style></head><body>
<svg width="0" height="0" style="position:absolute">${TINT('truth', 0.17, 0.63, 0.17)}${TINT('pred', 0.84, 0.15, 0.16)}</svg>
${wrap.before ?? ''}
<h1>Frozen-encoder evaluation</h1>
<p>Dataset <b>${escape(results.dataset.name)}</b> (${escape(results.dataset.kind)}, classes: ${results.dataset.classes.map(escape).join(', ')}; ${results.dataset.images} images; sha256 <code>${results.dataset.sha256}</code>).
Split by patient with seed ${results.config.split_seed}: ${Object.entries(results.splits)
    .map(([t, s]) => `${t} ${s.train}/${s.validation}/${s.test}`)
    .join(', ')} (train/validation/test; ids in splits.json).
Label fractions ${results.config.label_fractions.map(pct).join(', ')}; seeds ${results.config.seeds.join(', ')}. Produced ${escape(results.created)} in ${results.seconds.toFixed(0)} s.</p>
<h2>Results</h2>
${metricTables(results)}
${rocSvg(results)}
${samples(results)}
${grids(results)}
<h2>Encoders and digests</h2>
<table><tr><th>encoder</th><th>method / architecture</th><th>files (sha256)</th><th>encoding</th></tr>${digests.join('')}</table>
<h2>Configuration</h2>
<pre>${escape(JSON.stringify(results.config, null, 2))}</pre>
</body></html>
`;
}
