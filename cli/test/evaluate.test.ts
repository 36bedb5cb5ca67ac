import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { makeTempDir, repoRoot } from '@medsyn/testing';
import { readEvaluationConfig } from '../src/commands/evaluate';
import { main } from '../src/main';

describe('medsyn evaluate', () => {
  const tmp = makeTempDir('cli-evaluate');
  afterAll(() => tmp.remove());

  it('reads the example config: paths relative to it', () => {
    const config = readEvaluationConfig(path.join(repoRoot, 'examples', 'evaluate', 'covid-cxr.yaml'));
    expect(config.dataset.root).toBe(path.resolve(repoRoot, '../shared/data/covid-cxr'));
    expect(config.output).toBe(path.join(repoRoot, '.medsyn', 'examples', 'evaluate'));
    expect(config.encoders[0]!.bundle).toBe(path.join(repoRoot, '.medsyn', 'runs', 'convirt-covid', 'encoder'));
    expect(config.encoders[1]!.baseline).toEqual({ architecture: 'resnet18', size: 64, width: 16, seed: 1 });
  });

  it('evaluates from a YAML config, prints the summaries and writes results, splits and report; a bad config fails naming the field', async () => {
    fs.mkdirSync(path.join(tmp.dir, 'images'));
    const rows = ['image,positive'];
    for (let i = 0; i < 16; i++) {
      const image = grayImage(32, 32, new Float32Array(32 * 32).fill(0.2));
      for (let y = 4; y < (i % 2 ? 28 : 12); y++) for (let x = 4; x < 12; x++) image.data[y * 32 + x] = 0.9;
      fs.writeFileSync(path.join(tmp.dir, 'images', `${i}.png`), encodeGrayPng(image));
      rows.push(`${i}.png,${i % 2}`);
    }
    fs.writeFileSync(path.join(tmp.dir, 'labels.csv'), `${rows.join('\n')}\n`);
    const config = path.join(tmp.dir, 'eval.yaml');
    fs.writeFileSync(
      config,
      [
        'encoders:',
        '  - { name: random, baseline: { architecture: resnet18, size: 32, width: 4, seed: 0 }, pretraining_data: random }',
        'dataset: { format: csv, root: ., options: { label_columns: positive, images: images } }',
        'tasks: [classification]',
        'label_fractions: [1]',
        'seeds: [0, 1]',
        'epochs: { classification: 5 }',
        'output: out',
      ].join('\n'),
    );
    const stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['node', 'medsyn', 'evaluate', '--config', config, '--no-progress'])).toBe(0);
      const out = stdout.mock.calls.map((c) => String(c[0])).join('');
      expect(out).toMatch(/^random\tclassification\t1\tauroc_macro\t\d\.\d{3} ± \d\.\d{3}$/m);
      for (const file of ['results.json', 'splits.json', 'report.html'])
        expect(fs.existsSync(path.join(tmp.dir, 'out', file))).toBe(true);
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toMatch(
        /random classification 100% seed 1: auroc_macro/,
      );
      fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('seeds: [0, 1]', 'seeds: [-1]'));
      expect(await main(['node', 'medsyn', 'evaluate', '--config', config, '--no-progress'])).toBe(1);
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toContain(
        'medsyn: seeds[0]: must be an integer from 0 to 2^53 - 1',
      );
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  });
});
