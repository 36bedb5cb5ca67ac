import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from '@medsyn/testing';
import { main } from '../src/main';

describe('medsyn anonymize', () => {
  const tmp = makeTempDir('cli-anonymize');
  afterAll(() => tmp.remove());
  const quiet = () => [
    jest.spyOn(process.stdout, 'write').mockImplementation(() => true),
    jest.spyOn(process.stderr, 'write').mockImplementation(() => true),
  ];

  it('anonymizes JSONL into JSONL with prompts, listing a bad line without its text', async () => {
    const input = path.join(tmp.dir, 'reports.jsonl');
    fs.writeFileSync(
      input,
      [
        JSON.stringify({ id: 'r1', text: 'FINDINGS: Seen by Dr. Okafor on 3/4/2021.\nIMPRESSION: No acute process.' }),
        '{not json',
        JSON.stringify({ id: 'r2', text: 'MRN 12345678. Clear lungs.' }),
      ].join('\n'),
    );
    const [out, prompts, errors] = ['out.jsonl', 'prompts.jsonl', 'errors.jsonl'].map((f) => path.join(tmp.dir, f));
    const [stdout, stderr] = quiet();
    try {
      expect(
        await main([
          'node',
          'medsyn',
          'anonymize',
          '--in',
          input,
          '--out',
          out!,
          '--mode',
          'tag',
          '--prompts',
          prompts!,
          '--errors',
          errors!,
          '--no-progress',
        ]),
      ).toBe(0);
      expect(stdout!.mock.calls.map((c) => String(c[0])).join('')).toContain('anonymized 2 reports (tag)');
    } finally {
      stdout!.mockRestore();
      stderr!.mockRestore();
    }
    const lines = fs
      .readFileSync(out!, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.text)).toEqual([
      'FINDINGS: Seen by Dr. [NAME] on [DATE].\nIMPRESSION: No acute process.',
      'MRN [ID]. Clear lungs.',
    ]);
    expect(lines[0].spans.map((s: { label: string }) => s.label)).toEqual(['NAME', 'DATE']);
    expect(JSON.parse(fs.readFileSync(prompts!, 'utf8').split('\n')[0]!)).toMatchObject({
      id: 'r1',
      prompt: 'No acute process.',
    });
    expect(fs.readFileSync(errors!, 'utf8')).toBe(
      `${JSON.stringify({ line: 2, id: '', message: 'line: invalid JSON' })}\n`,
    );
  });

  it('composes CSV columns into sections and writes CSV in surrogate mode', async () => {
    const input = path.join(tmp.dir, 'iu.csv');
    fs.writeFileSync(input, 'uid,findings,impression\n1,"Discussed with Dr. Okafor, 92-year-old.",Stable.\n');
    const out = path.join(tmp.dir, 'iu-out.csv');
    const secret = path.join(tmp.dir, 'secret');
    fs.writeFileSync(secret, 'a-cli-test-secret-0123456789\n');
    const [stdout, stderr] = quiet();
    try {
      const args = [
        'node',
        'medsyn',
        'anonymize',
        '--in',
        input,
        '--out',
        out,
        '--mode',
        'surrogate',
        '--id-field',
        'uid',
        '--text-field',
        'findings,impression',
        '--no-spans',
        '--no-progress',
      ];
      expect(await main([...args, '--secret-file', secret])).toBe(0);
      expect(await main(args.map((a) => (a === 'surrogate' ? 'blur' : a)))).toBe(1);
      expect(stderr!.mock.calls.map((c) => String(c[0])).join('')).toContain(
        '--mode must be one of mask, tag, surrogate',
      );
    } finally {
      stdout!.mockRestore();
      stderr!.mockRestore();
    }
    expect(fs.readFileSync(out, 'utf8')).toMatch(
      /^id,text,prompt,prompt_section,prompt_tokens,prompt_truncated\n1,"FINDINGS: Discussed with Dr\. [A-Z][a-z]+, 90-year-old\.\nIMPRESSION: Stable\.",Stable\.,IMPRESSION,4,false\n$/,
    );
  });
});
