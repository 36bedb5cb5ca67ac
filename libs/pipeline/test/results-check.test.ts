import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir, repoRoot, tsxLoaderArgs } from '@medsyn/testing';
import { checkResultsDoc, renderComparisonTables } from '../src';

// A two-seed run's results.json and state.json, and a document quoting them in every marked form.
const FIXTURES = path.join(__dirname, 'fixtures', 'results-check');
const read = (file: string) => fs.readFileSync(path.join(FIXTURES, file), 'utf8');
const files = { results: JSON.parse(read('results.json')), state: JSON.parse(read('state.json')) };
const doc = read('results.md');
const tmp = makeTempDir('results-check');
afterAll(() => tmp.remove());

/** `npm run check:results` itself, on the given files. */
function checkResults(...args: string[]) {
  return spawnSync(
    process.execPath,
    [...tsxLoaderArgs(), path.join(repoRoot, 'scripts', 'check-results.ts'), ...args],
    { encoding: 'utf8', cwd: tmp.dir },
  );
}

describe('docs/results.md figures are checked against the run', () => {
  it('passes a document whose every marked figure and table cell is what the files say', () => {
    const check = checkResultsDoc(doc, files);
    expect(check.mismatches).toEqual([]);
    // 5 inline figures; the table's 2 rows x 4 columns less one "not compared" cell.
    expect(check.figures).toHaveLength(12);
  });

  it('passes the tables the replication prints, as they are', () => {
    const tables = renderComparisonTables(files.results, files.state.stages, {
      tasks: ['segmentation'],
      metrics: { segmentation: 'dice' },
    });
    expect(tables).toContain(
      'mean ± std of 4 runs per pre-trained arm: 2 pre-training seeds x downstream seeds 0, 1; random-init 2 runs',
    );
    const check = checkResultsDoc(tables, files);
    expect(check.mismatches).toEqual([]);
    // 2 label fractions x (3 arms + 1 ratio).
    expect(check.figures).toHaveLength(8);
  });

  it('fails on a changed figure, naming its line, the figure and what it should read', () => {
    const wrong = doc
      .replace('| 1 % | 0.730 ± 0.026 | 0.740 ± 0.026 |', '| 1 % | 0.730 ± 0.026 | 0.741 ± 0.026 |')
      .replace('-->527 images', '-->528 images');
    const { mismatches } = checkResultsDoc(wrong, files);
    expect(mismatches.map((m) => [m.line, m.figure, m.quoted, m.expected])).toEqual([
      [6, 'results.json $.dataset.images', '528', '527'],
      [12, 'segmentation/dice/1%/convirt-synthetic', '0.741 ± 0.026', '0.740 ± 0.026'],
    ]);
  });

  it('leaves a marker quoted in inline code alone: it documents the convention', () => {
    const check = checkResultsDoc('Write `<!-- results.json: $.dataset.images -->` before a figure.', files);
    expect(check.figures).toEqual([]);
    expect(check.mismatches).toEqual([]);
  });

  it('fails on a figure the files do not have, and on a marker with no figure after it', () => {
    const { mismatches } = checkResultsDoc(
      '<!-- results.json: segmentation/dice/10%/convirt-real -->0.9 and <!-- results.json: $.dataset.images --> images',
      files,
    );
    expect(mismatches.map((m) => m.expected)).toEqual([
      'no such figure in the files',
      'a figure right after the marker',
    ]);
  });

  it('the command fails on a mismatch, passes a matching document, and skips with a note where there is no results.json', () => {
    fs.writeFileSync(path.join(tmp.dir, 'wrong.md'), doc.replace('-->527 images', '-->528 images'));
    const given = ['--results', path.join(FIXTURES, 'results.json'), '--state', path.join(FIXTURES, 'state.json')];
    const pass = checkResults('--doc', path.join(FIXTURES, 'results.md'), ...given);
    expect(pass.stdout).toContain('check:results: 12 figures of');
    expect(pass.status).toBe(0);
    const fail = checkResults('--doc', path.join(tmp.dir, 'wrong.md'), ...given);
    expect(fail.stderr).toContain('wrong.md:6: results.json $.dataset.images reads 528, the run gives 527');
    expect(fail.status).toBe(1);
    const fresh = checkResults('--doc', path.join(FIXTURES, 'results.md'), '--store', path.join(tmp.dir, 'no-store'));
    expect(fresh.stdout).toMatch(/^check:results skipped: no results\.json/);
    expect(fresh.status).toBe(0);
  });
});
