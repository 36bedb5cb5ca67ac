import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTinyModel } from '@medsyn/diffusion';
import { decodePng } from '@medsyn/imaging';
import { makeTempDir } from '@medsyn/testing';
import { main } from '../src/main';

describe('medsyn synthesize', () => {
  const tmp = makeTempDir('cli-synthesize');
  afterAll(() => tmp.remove());

  it('generates one PNG per prompt and a pair manifest, and a rerun resumes', async () => {
    const model = buildTinyModel(path.join(tmp.dir, 'model'));
    const prompts = path.join(tmp.dir, 'prompts.txt');
    fs.writeFileSync(prompts, 'Small left pleural effusion.\nNo acute cardiopulmonary process.\n');
    const out = path.join(tmp.dir, 'out');
    const stdout = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const stderr = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const args = [
        'node',
        'medsyn',
        'synthesize',
        '--model',
        model,
        '--prompts',
        prompts,
        '--out',
        out,
        '--steps',
        '3',
        '--bit-depth',
        '16',
        '--no-progress',
      ];
      expect(await main(args)).toBe(0);
      expect(stdout.mock.calls.map((c) => String(c[0])).join('')).toMatch(/2 accepted, 0 rejected/);
      const images = fs.readdirSync(path.join(out, 'images')).sort();
      expect(images).toEqual(['prompt-000000.png', 'prompt-000001.png']);
      expect(decodePng(fs.readFileSync(path.join(out, 'images', images[0]!)))).toMatchObject({ width: 64, height: 64 });
      const pairs = fs
        .readFileSync(path.join(out, 'pairs-shard-00000-of-00001.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(pairs.map((p) => p.id)).toEqual(['prompt-000000', 'prompt-000001']);
      const before = fs.statSync(path.join(out, 'images', images[0]!)).mtimeMs;
      expect(await main(args)).toBe(0);
      expect(fs.statSync(path.join(out, 'images', images[0]!)).mtimeMs).toBe(before); // skipped, not regenerated
      expect(
        await main([
          'node',
          'medsyn',
          'synthesize',
          '--model',
          path.join(tmp.dir, 'missing'),
          '--prompts',
          prompts,
          '--out',
          out,
        ]),
      ).toBe(1);
      expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toMatch(/model directory .* does not exist/);
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  });
});
