import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { makeTempDir, repoRoot } from '@medsyn/testing';
import { readPretrainFile } from '../src/commands/pretrain';
import { main } from '../src/main';

describe('medsyn pretrain', () => {
  const tmp = makeTempDir('cli-pretrain');
  afterAll(() => tmp.remove());

  it('reads the example config: the store relative to it, every setting valid', () => {
    const file = readPretrainFile(path.join(repoRoot, 'examples', 'pretrain', 'convirt-covid.yaml'), {});
    expect(file.store).toBe(`file://${path.join(repoRoot, '.medsyn')}`);
    expect(file.outputPrefix).toBe('runs/convirt-covid');
    expect(file.config).toMatchObject({
      method: 'convirt',
      batchSize: 16,
      data: { realPairs: ['covid-cxr/pairs.jsonl'] },
    });
  });

  it('trains from a YAML config next to its pairs, prints the loss and writes the encoder bundle; a bad config fails naming the field', async () => {
    const lines = [];
    fs.mkdirSync(path.join(tmp.dir, 'images'));
    for (let i = 0; i < 12; i++) {
      fs.writeFileSync(
        path.join(tmp.dir, 'images', `${i}.png`),
        encodeGrayPng(grayImage(32, 32, new Float32Array(32 * 32).fill(0.2 + 0.2 * (i % 3)))),
      );
      lines.push(
        JSON.stringify({ image: `images/${i}.png`, report: ['Clear lungs.', 'Mild haze.', 'Dense opacity.'][i % 3] }),
      );
    }
    fs.writeFileSync(path.join(tmp.dir, 'pairs.jsonl'), `${lines.join('\n')}\n`);
    const config = path.join(tmp.dir, 'tiny.yaml');
    fs.writeFileSync(
      config,
      [
        'method: convirt',
        'image_encoder: { architecture: resnet18, image_size: 32, width: 8 }',
        'text_encoder: { layers: 1, hidden_size: 16, heads: 2, max_length: 8, vocab_size: 60 }',
        'data: { real_pairs: [pairs.jsonl], validation_fraction: 0 }',
        'batch_size: 4',
        'embedding_size: 8',
      ].join('\n'),
    );
    const stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['node', 'medsyn', 'pretrain', '--config', config, '--no-progress'])).toBe(0);
      const out = stdout.mock.calls.map((c) => String(c[0])).join('');
      expect(out).toMatch(/steps 3, final loss \d+\.\d{4}/);
      expect(out).toContain(`encoder bundle: file://${tmp.dir}/runs/tiny/encoder`);
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toMatch(
        /step 1\/3 epoch 1\/1 loss \d+\.\d+ \(image_to_text/,
      );
      expect(fs.existsSync(path.join(tmp.dir, 'runs', 'tiny', 'encoder', 'encoder.json'))).toBe(true);
      fs.writeFileSync(config, fs.readFileSync(config, 'utf8').replace('batch_size: 4', 'batch_size: 0'));
      expect(await main(['node', 'medsyn', 'pretrain', '--config', config, '--no-progress'])).toBe(1);
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toContain('medsyn: batch_size: must be >= 2, got 0');
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  });
});
