import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { FileArtifactStore, listLocalFiles, localTreeDigest, storedDigest } from '@medsyn/artifact-store';
import { makeTempDir, repoRoot, tsxLoaderArgs } from '@medsyn/testing';
import { PipelineConfigError, parsePipelineConfig, pretrainingRuns, runPipeline } from '../src';

// A dozen records of the bundled demo sample (CC BY images, in the repository), tiny models.
const SAMPLE = path.join(repoRoot, 'examples', 'demo', 'sample');
const tmp = makeTempDir('pipeline');
afterAll(() => tmp.remove());

function writeInputs(dir: string, records: number, mutate?: (record: Record<string, string>, i: number) => void): void {
  fs.mkdirSync(dir, { recursive: true });
  const lines = fs
    .readFileSync(path.join(SAMPLE, 'reports.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .slice(0, records)
    .map((line, i) => {
      const record = JSON.parse(line) as Record<string, string>;
      record.image = path.join(SAMPLE, record.image!);
      mutate?.(record, i);
      return JSON.stringify(record);
    });
  fs.writeFileSync(path.join(dir, 'reports.jsonl'), `${lines.join('\n')}\n`);
}

type Section = Record<string, unknown>;
type TestConfig = Section & {
  input: Section;
  synthesize: Section;
  pretrain: Section & { config: Section };
  evaluate: Section;
};

function baseConfig(): TestConfig {
  return {
    run: 'ci',
    store: 'file://store',
    report: 'out/report.html',
    input: { reports: 'reports.jsonl', patient_field: 'patient', image_field: 'image' },
    synthesize: { model: path.join(tmp.dir, 'tiny-model'), num_inference_steps: 3, scheduler: 'ddim' },
    pretrain: {
      methods: ['convirt'],
      config: {
        image_encoder: { architecture: 'resnet18', image_size: 32, width: 8 },
        text_encoder: { layers: 1, hidden_size: 32, heads: 2, max_length: 32, vocab_size: 200 },
        batch_size: 4,
        epochs: 2,
        embedding_size: 16,
        checkpoint_every_steps: 1,
      },
    },
    evaluate: {
      dataset: { format: 'covid_cxr', root: SAMPLE },
      tasks: ['classification', 'segmentation'],
      label_fractions: [1],
      seeds: [0],
      max_images: 24,
      epochs: 2,
      report_samples: 1,
    },
    export: { licence: 'CC BY 4.0', shard_size: 5, deid_recall: 0.9984, deid_recall_source: 'npm run eval:anonymizer' },
  };
}

function writeConfig(dir: string, config: Record<string, unknown>): string {
  const file = path.join(dir, 'pipeline.yaml');
  fs.writeFileSync(file, stringify(config));
  return file;
}

/** `medsyn pipeline run`, the CLI process itself (from its sources), so that a kill reaches it. */
function startCli(
  config: string,
  ...extra: string[]
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    [
      ...tsxLoaderArgs(),
      path.join(repoRoot, 'cli', 'src', 'main.ts'),
      'pipeline',
      'run',
      config,
      '--no-progress',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 240_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// The synthesizer's tiny model comes from diffusion's build script, run as a process: the pipeline (a gRPC client)
// does not import the compute libraries, not even in its tests.
beforeAll(() => {
  const script = path.join(repoRoot, 'libs', 'diffusion', 'scripts', 'build-tiny-model.ts');
  execFileSync(process.execPath, [...tsxLoaderArgs(), script, path.join(tmp.dir, 'tiny-model')], { stdio: 'pipe' });
});

describe('pipeline config', () => {
  const dir = path.join(tmp.dir, 'config');
  beforeAll(() => writeInputs(dir, 12));
  const parse = (mutate: (c: TestConfig) => void) => {
    const config = JSON.parse(JSON.stringify(baseConfig())) as TestConfig;
    mutate(config);
    return () => parsePipelineConfig(config, dir, {});
  };

  it('accepts the CI config and resolves its paths against the config folder', () => {
    const config = parse(() => {})();
    expect(config.input.reports).toBe(path.join(dir, 'reports.jsonl'));
    expect(config.store).toBe(`file://${path.join(dir, 'store')}`);
    expect(config.pretrain.data).toEqual(['real', 'synthetic']);
  });

  it.each([
    ['an unknown key', (c: TestConfig) => (c.synthesize.stepz = 3), 'synthesize.stepz: unknown key'],
    ['an unknown method', (c: TestConfig) => (c.pretrain.methods = ['convirt', 'clip']), 'pretrain.methods[1]'],
    ['a bad pretraining value', (c: TestConfig) => (c.pretrain.config.batch_size = -2), 'pretrain.config.batch_size'],
    ['a bad evaluation value', (c: TestConfig) => (c.evaluate.label_fractions = [0]), 'evaluate.label_fractions[0]'],
    ['a missing reports file', (c: TestConfig) => (c.input.reports = 'nope.jsonl'), 'input.reports: file not found'],
    [
      'a model folder without model_index.json',
      (c: TestConfig) => (c.synthesize.model = dir),
      'synthesize.model: no model_index.json',
    ],
    [
      'a CSV reports file for real pairs',
      (c: TestConfig) => (c.input.reports = 'reports.csv'),
      'input.reports: real pairs need a JSONL reports file',
    ],
    ['real pairs without an image field', (c: TestConfig) => delete c.input.image_field, 'input.image_field'],
    [
      'the method set inside pretrain.config',
      (c: TestConfig) => (c.pretrain.config.method = 'gloria'),
      'pretrain.config.method',
    ],
    [
      'a repeated pre-training seed',
      (c: TestConfig) => (c.pretrain.seeds = [0, 1, 0]),
      'pretrain.seeds: must not repeat a seed',
    ],
  ])('rejects %s, naming the key', (_, mutate, message) => {
    expect(parse(mutate)).toThrow(PipelineConfigError);
    expect(parse(mutate)).toThrow(message);
  });

  it('pre-trains each arm once with pretrain.config.seed by default (named as before seeds), else once per listed seed', () => {
    const runs = (mutate: (c: TestConfig) => void) =>
      pretrainingRuns(parse(mutate)()).map((r) => `${r.name} ${r.seed}`);
    expect(runs((c) => (c.pretrain.config.seed = 4))).toEqual(['convirt-real 4', 'convirt-synthetic 4']);
    expect(runs((c) => (c.pretrain.seeds = [0, 2]))).toEqual([
      'convirt-real-seed0 0',
      'convirt-real-seed2 2',
      'convirt-synthetic-seed0 0',
      'convirt-synthetic-seed2 2',
    ]);
  });

  it('refuses a stage to verify that the run does not have, naming its stages, before starting anything', async () => {
    const config = parse(() => {})();
    await expect(runPipeline(config, { verify: ['pretrain-convirt'] })).rejects.toThrow(
      'verify: no stage pretrain-convirt in this run (stages: anonymize, real-pairs, synthesize, pretrain-data, pretrain convirt-real, pretrain convirt-synthetic, evaluate',
    );
    expect(fs.existsSync(path.join(dir, 'store'))).toBe(false);
  });

  it('reports a bad config from the CLI with exit code 2 and the key, before starting anything', async () => {
    const file = writeConfig(dir, { ...baseConfig(), anonymize: { mode: 'redact' } });
    const cli = startCli(file);
    expect(`exit ${await cli.exited}\n${cli.output()}`).toMatch(/^exit 2\n/);
    expect(cli.output()).toContain('anonymize.mode');
    expect(cli.output()).not.toContain('services:');
  });
});

describe('medsyn pipeline run (real gRPC services, tiny models, a dozen records)', () => {
  const dir = path.join(tmp.dir, 'run');
  beforeAll(() => writeInputs(dir, 12));

  it('runs every stage, resumes after a kill without redoing finished stages, and writes the report', async () => {
    // Two pre-training seeds, and a quarter of the reports held out for every arm's retrieval check.
    const withSeeds = baseConfig();
    withSeeds.pretrain = { ...withSeeds.pretrain, seeds: [0, 1], validation_fraction: 0.25 };
    const config = writeConfig(dir, withSeeds);
    const first = startCli(config);
    // Kill it (SIGKILL: no cleanup of its own) once pre-training has started.
    await waitFor(
      () => /pretrain convirt-real-seed0 \.\.\./.test(first.output()) || first.child.exitCode !== null,
      'pre-training to start',
    );
    expect(first.output()).toMatch(/synthesize: done in/);
    first.child.kill('SIGKILL');
    await first.exited;
    // Its local services notice that their parent is gone and stop gracefully.
    const logs = path.join(dir, 'out', 'medsyn-logs-ci');
    await waitFor(
      () =>
        ['anonymizer', 'synthesizer', 'pretrainer', 'evaluator'].every((s) =>
          /"msg":"stopped"/.test(fs.readFileSync(path.join(logs, `${s}.log`), 'utf8')),
        ),
      'the orphaned services to stop',
      60_000,
    );

    // Each job wrote under its stage key: pipeline/ci/<stage>/<key>/, one key per stage in this run.
    const jobFolder = (stage: string) => {
      const keys = fs.readdirSync(path.join(dir, 'store', 'pipeline', 'ci', stage));
      expect(keys).toHaveLength(1);
      return path.join(dir, 'store', 'pipeline', 'ci', stage, keys[0]!);
    };
    // The synthesizer was sent the model folder's tree digest, and took the job: it matched the model it loaded.
    const model = path.join(tmp.dir, 'tiny-model');
    const synthesizerJobs = path.join(dir, 'store', 'jobs', 'synthesizer');
    const [record] = fs.readdirSync(synthesizerJobs).filter((f) => f.endsWith('.json'));
    const spec = (
      JSON.parse(fs.readFileSync(path.join(synthesizerJobs, record!), 'utf8')) as {
        spec: { model: { sha256: string } };
      }
    ).spec;
    expect(spec.model.sha256).toBe(
      await localTreeDigest(
        model,
        listLocalFiles(model).filter((f) => !f.endsWith('.safetensors')),
      ),
    );
    const images = path.join(jobFolder('synthesize'), 'images');
    const before = new Map(fs.readdirSync(images).map((f) => [f, fs.statSync(path.join(images, f)).mtimeMs]));
    expect(before.size).toBe(12);

    const second = startCli(config);
    expect(`exit ${await second.exited}\n${second.output()}`).toMatch(/^exit 0\n/);
    const output = second.output();
    for (const stage of ['anonymize', 'real-pairs', 'synthesize'])
      expect(output).toContain(`${stage}: done in an earlier run`);
    expect(output).toMatch(/pretrain convirt-synthetic-seed1: done in \d/);
    expect(output).toMatch(/evaluate: done in \d/);
    // Not one synthetic image was made again.
    for (const [file, mtime] of before) expect(fs.statSync(path.join(images, file)).mtimeMs).toBe(mtime);
    // The evaluator was sent the tree digests of the dataset and of each bundle, and took the job: they matched.
    const evaluatorJobs = path.join(dir, 'store', 'jobs', 'evaluator');
    const [evaluation] = fs.readdirSync(evaluatorJobs).filter((f) => f.endsWith('.json'));
    const { inputs } = (
      JSON.parse(fs.readFileSync(path.join(evaluatorJobs, evaluation!), 'utf8')) as {
        spec: { inputs: { field: string; uri: string; sha256: string }[] };
      }
    ).spec;
    expect(inputs.map((i) => i.field)).toEqual(
      [0, 1, 2, 3].map((i) => `config.encoders[${i}].bundle`).concat('config.dataset'),
    );
    const store = new FileArtifactStore(path.join(dir, 'store'));
    for (const bundle of inputs.slice(0, 4))
      expect(bundle.sha256).toBe(await storedDigest(store, bundle.uri.replace(/\/+$/, ''), true));
    expect(inputs[4]!.sha256).toBe(await localTreeDigest(SAMPLE));
    // Every arm and seed was sent the same held-out pairs (3 reports, their real images) and the same vocabulary, built once.
    const pretrainerJobs = path.join(dir, 'store', 'jobs', 'pretrainer');
    const sent = fs
      .readdirSync(pretrainerJobs)
      .filter((f) => f.endsWith('.json'))
      .map(
        (f) =>
          (
            JSON.parse(fs.readFileSync(path.join(pretrainerJobs, f), 'utf8')) as {
              spec: { config: { seed: number; data: { retrievalPairs?: string }; textEncoder: { vocab?: string } } };
            }
          ).spec.config,
      );
    const shared = jobFolder('pretrain-data');
    expect(sent.map((c) => [c.data.retrievalPairs, c.textEncoder.vocab])).toEqual(
      sent.map(() => [
        store.uriOf(path.relative(path.join(dir, 'store'), path.join(shared, 'retrieval-pairs.jsonl'))),
        store.uriOf(path.relative(path.join(dir, 'store'), path.join(shared, 'vocab.txt'))),
      ]),
    );
    expect(sent.map((c) => c.seed).sort()).toEqual([0, 0, 1, 1]);
    const heldOut = fs
      .readFileSync(path.join(shared, 'retrieval-pairs.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { image: string });
    expect(heldOut).toHaveLength(3);
    for (const p of heldOut) expect(p.image).toContain('/real/images/');
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'store', 'pipeline', 'ci', 'state.json'), 'utf8')) as {
      stages: Record<string, { summary: Record<string, number> }>;
    };
    expect(
      Object.keys(state.stages)
        .filter((s) => s.startsWith('pretrain '))
        .map((s) => state.stages[s]!.summary.retrieval_pairs),
    ).toEqual([3, 3, 3, 3]);
    // The printed synthetic / real ratios: a number only where both arms learned (held-out retrieval above chance).
    const learned = (arm: string) => {
      const { retrieval_top1: top1, retrieval_chance: chance } = state.stages[`pretrain ${arm}`]!.summary;
      return top1! > chance!;
    };
    const ratioLines = [...output.matchAll(/^(\S+) \/ (\S+)\t\w+\t[\d.]+\t\S+\t(.*)$/gm)];
    expect(ratioLines.length).toBeGreaterThan(0);
    for (const [, synthetic, real, shown] of ratioLines)
      if (learned(synthetic!) && learned(real!)) expect(shown).toMatch(/^\d+\.\d{3}$/);
      else expect(shown).toMatch(/retrieval [\d.]+ <= chance [\d.]+: not compared$/);

    const html = fs.readFileSync(path.join(dir, 'out', 'report.html'), 'utf8');
    expect(html).toContain('medsyn pipeline: ci');
    expect(html).toContain('Real and synthetic images of the same reports');
    expect((html.match(/alt="synthetic"/g) ?? []).length).toBe(8);
    const results = JSON.parse(fs.readFileSync(path.join(jobFolder('evaluate'), 'results.json'), 'utf8')) as {
      encoders: { name: string }[];
      ratios: unknown[];
    };
    expect(results.encoders.map((e) => e.name).sort()).toEqual([
      'convirt-real-seed0',
      'convirt-real-seed1',
      'convirt-synthetic-seed0',
      'convirt-synthetic-seed1',
      'random-init',
    ]);
    expect(results.ratios.length).toBeGreaterThan(0);

    // The shareable bundle: 12 synthetic pairs in shards of 5, with the card.
    const card = JSON.parse(
      fs.readFileSync(path.join(dir, 'store', 'pipeline', 'ci', 'dataset', 'dataset.json'), 'utf8'),
    ) as { samples: number; shards: unknown[]; licence: string; deidentification: { mode: string; recall: number } };
    expect([card.samples, card.shards.length, card.licence]).toEqual([12, 3, 'CC BY 4.0']);
    expect(card.deidentification).toMatchObject({ mode: 'mask', recall: 0.9984 });

    // A third run has nothing left to do but what --verify asks: every arm pre-trained again, bit for bit the same.
    const bundles = () => fs.readdirSync(path.join(dir, 'store', 'pipeline', 'ci', 'pretrain', 'convirt-real-seed0'));
    const third = startCli(config, '--verify', 'pretrain');
    expect(`exit ${await third.exited}\n${third.output()}`).toMatch(/^exit 0\n/);
    expect(third.output()).toContain('evaluate: done in an earlier run');
    expect(third.output()).toContain('export: done in an earlier run');
    expect(third.output().match(/pretrain \S+: done again in \S+ to verify: identical digests/g)).toHaveLength(4);
    expect(third.output()).toContain('verified: 4 of 4 stages done again gave identical digests');
    // The recomputed bundle went to a folder of its own; the recorded one, which the evaluation read, is untouched.
    expect(bundles()).toHaveLength(2);
    expect(fs.readFileSync(path.join(dir, 'store', 'pipeline', 'ci', 'state.json'), 'utf8')).toBe(
      JSON.stringify(state, null, 1),
    );
  });

  it('fails with a message naming the stage and the record when an input image is missing', async () => {
    const bad = path.join(tmp.dir, 'bad');
    writeInputs(bad, 12, (record, i) => {
      if (i === 5) record.image = path.join(bad, 'missing.png');
    });
    const cli = startCli(writeConfig(bad, baseConfig()));
    expect(`exit ${await cli.exited}\n${cli.output()}`).toMatch(/^exit 1\n/);
    expect(cli.output()).toMatch(/stage real-pairs failed: record \S+: image names a missing file/);
    expect(cli.output()).toContain('anonymize: done in');
  });
});
