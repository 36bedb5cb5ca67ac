// npm run check:results [-- --doc docs/results.md] [--results <results.json>] [--state <state.json>] [--store .medsyn]
// Checks every figure docs/results.md marks (`<!-- results.json: ... -->`, the convention in
// docs/results.md and libs/pipeline/src/results-check.ts) against the replication's own files:
// the evaluation's results.json (found through the pipeline's state.json under the store) and
// state.json. Exit 1 on any mismatch; skipped, exit 0, where the replication has not been run
// here (a fresh clone). The checker itself is tested on fixtures by `npx nx test pipeline`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkResultsDoc } from '@medsyn/pipeline';

const root = path.resolve(__dirname, '..');
const option = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? path.resolve(process.argv[i + 1]!) : fallback;
};
const doc = option('doc', path.join(root, 'docs', 'results.md'));
const store = option('store', path.join(root, '.medsyn'));
const run = path.join(store, 'pipeline', 'replication');
const state = option('state', path.join(run, 'state.json'));
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
const stateJson = fs.existsSync(state)
  ? (readJson(state) as { stages?: Record<string, { outputs?: Record<string, string> }> })
  : undefined;

/** The results.json the run's state names (the last evaluation), else the newest under evaluate/. */
function findResults(): string | undefined {
  const given = option('results', '');
  if (given) return given;
  const key = stateJson?.stages?.evaluate?.outputs?.results;
  if (key && fs.existsSync(path.join(store, key))) return path.join(store, key);
  const folder = path.join(run, 'evaluate');
  if (!fs.existsSync(folder)) return undefined;
  const found = fs
    .readdirSync(folder)
    .map((d) => path.join(folder, d, 'results.json'))
    .filter((f) => fs.existsSync(f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  return found[0];
}

const rel = (file: string) => path.relative(process.cwd(), file) || file;
const results = findResults();
if (!results || !fs.existsSync(results)) {
  process.stdout.write(
    `check:results skipped: no results.json at ${rel(path.join(run, 'evaluate', '<key>', 'results.json'))} (run npm run experiment:replication first; the checker's own tests run in npx nx test pipeline)\n`,
  );
  process.exit(0);
}
const check = checkResultsDoc(fs.readFileSync(doc, 'utf8'), {
  results: readJson(results) as Parameters<typeof checkResultsDoc>[1]['results'],
  state: stateJson,
});
for (const m of check.mismatches)
  process.stderr.write(`${rel(doc)}:${m.line}: ${m.figure} reads ${m.quoted}, the run gives ${m.expected}\n`);
if (check.mismatches.length) {
  process.stderr.write(
    `check:results: ${check.mismatches.length} of ${check.figures.length} marked figures of ${rel(doc)} differ from ${rel(results)}\n`,
  );
  process.exit(1);
}
process.stdout.write(
  check.figures.length
    ? `check:results: ${check.figures.length} figures of ${rel(doc)} match ${rel(results)}\n`
    : `check:results: ${rel(doc)} marks no figure (see "Checked figures" in docs/results.md)\n`,
);
