import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileArtifactStore, getBuffer, putJsonl, readJsonl, sha256Hex } from '@medsyn/artifact-store';
import type { PairLine } from '@medsyn/dataset';
import { grayImage, readPngText, decodePng } from '@medsyn/imaging';
import { GraphBuilder, encodeModel, ops } from '@medsyn/onnx-graph';
import { seededRandom } from '@medsyn/random';
import { makeTempDir } from '@medsyn/testing';
import {
  buildTinyModel,
  classifierCheck,
  TextToImageModel,
  fetchModelDirectory,
  storePrefixOf,
  imageStatisticsCheck,
  QualityGate,
  synthesizeDatasetShard,
  synthesize,
  type QualityCheck,
} from '../src';

const smooth = (size: number) =>
  grayImage(
    size,
    size,
    Float32Array.from({ length: size * size }, (_, i) => 0.2 + 0.6 * ((i % size) / size)),
  );

describe('quality gate', () => {
  const tmp = makeTempDir('quality');
  afterAll(() => tmp.remove());

  it('rejects blank, saturated and noise-like images and passes a smooth one', async () => {
    const check = imageStatisticsCheck();
    const random = seededRandom(12345);
    const noise = grayImage(
      64,
      64,
      Float32Array.from({ length: 64 * 64 }, () => random() * 0.6 + 0.2),
    );
    expect(await check.check(smooth(64), {})).toEqual([]);
    expect(await check.check(grayImage(64, 64, new Float32Array(64 * 64).fill(0.5)), {})).toEqual(['blank']);
    expect(
      await check.check(
        grayImage(
          64,
          64,
          Float32Array.from({ length: 64 * 64 }, (_, i) => (i >> 6 < 40 ? 1 : 0)),
        ),
        {},
      ),
    ).toEqual(['saturated']);
    expect(await check.check(noise, {})).toEqual(['noise']);
  });

  it('rejects an image whose classifier prediction disagrees with the report label', async () => {
    // A one-label "classifier": logit = 20 (mean intensity - 0.5), i.e. "bright" when mean > 0.5.
    const g = new GraphBuilder('bright');
    const o = ops(g);
    const x = g.input('image', 'float32', ['batch', 1, 16, 16]);
    g.output(o.mul(o.flatten(o.globalAveragePool(x), 1), o.scalar('float32', 10)), 'logits');
    const file = path.join(tmp.dir, 'bright.onnx');
    fs.writeFileSync(file, encodeModel(g.toModelProto()));
    // mean 0.5 / std 0.5 normalisation maps intensity m to 2m - 1: logit = 10 (2m - 1).
    const check = await classifierCheck({ modelPath: file, labels: ['Bright'] });
    const bright = grayImage(32, 32, new Float32Array(32 * 32).fill(0.9));
    expect(await check.check(bright, { labels: { Bright: '1' } })).toEqual([]);
    expect(await check.check(bright, { labels: { Bright: '0' } })).toEqual(['bright_mismatch']);
    expect(await check.check(bright, { labels: { Bright: '-1' } })).toEqual([]); // uncertain: not judged
    expect(await check.check(bright, {})).toEqual([]);
    await check.close?.();
  });
});

describe('synthesis with the gate and dataset shards', () => {
  const tmp = makeTempDir('synthesis');
  let model: TextToImageModel;
  beforeAll(async () => {
    model = await TextToImageModel.load(buildTinyModel(path.join(tmp.dir, 'model')));
  });
  afterAll(async () => {
    await model?.close();
    tmp.remove();
  });

  it('serves a model stored in the artifact store, fetched once into a cache', async () => {
    const store = new FileArtifactStore(path.join(tmp.dir, 'model-store'));
    const source = path.join(tmp.dir, 'model');
    const files = (fs.readdirSync(source, { recursive: true }) as string[]).filter((f) =>
      fs.statSync(path.join(source, f)).isFile(),
    );
    for (const f of files)
      await store.put(`models/tiny/${f.split(path.sep).join('/')}`, fs.readFileSync(path.join(source, f)));
    const dir = await fetchModelDirectory(store, 'models/tiny', path.join(tmp.dir, 'cache'));
    const fetched = await TextToImageModel.load(dir);
    expect(fetched.info.digest).toBe(model.info.digest);
    await fetched.close();
    const before = fs.statSync(path.join(dir, 'unet', 'model.onnx')).mtimeMs;
    expect(
      await fetchModelDirectory(
        store,
        storePrefixOf(store, `${store.rootUri}/models/tiny/`),
        path.join(tmp.dir, 'cache'),
      ),
    ).toBe(dir);
    expect(fs.statSync(path.join(dir, 'unet', 'model.onnx')).mtimeMs).toBe(before);
    await expect(fetchModelDirectory(store, 'models/none', path.join(tmp.dir, 'cache'))).rejects.toThrow(
      /no model files/,
    );
  });

  it('regenerates a rejected image with the next seed and counts the reasons', async () => {
    // Rejects the first image it sees, then accepts: the gate's retry path, deterministically.
    let seen = 0;
    const once: QualityCheck = { name: 'once', check: async () => (seen++ === 0 ? ['first_try'] : []) };
    const [result] = await synthesize(
      model,
      [{ prompt: 'cardiomegaly', seed: 10n, numInferenceSteps: 2, maxAttempts: 3 }],
      { gate: new QualityGate([once]), bitDepth: 16 },
    );
    expect(result).toMatchObject({ accepted: true, attempts: 2, seed: 11n, rejections: { first_try: 1 } });
    const text = readPngText(result!.png);
    expect(text).toMatchObject({
      'medsyn:seed': '11',
      'medsyn:prompt_sha256': sha256Hex('cardiomegaly'),
      'medsyn:model_sha256': model.info.digest,
      'medsyn:steps': '2',
      'medsyn:scheduler': 'pndm',
    });
    expect(JSON.stringify(text)).not.toContain('cardiomegaly');
    expect(decodePng(result!.png).width).toBe(64);

    const never: QualityCheck = { name: 'never', check: async () => ['always_bad'] };
    const [rejected] = await synthesize(
      model,
      [{ prompt: 'cardiomegaly', seed: 10n, numInferenceSteps: 1, maxAttempts: 2 }],
      { gate: new QualityGate([never]) },
    );
    expect(rejected).toMatchObject({ accepted: false, attempts: 2, rejections: { always_bad: 2 } });
  });

  it('splits a manifest into shards and resumes an interrupted shard without losing or repeating images', async () => {
    const store = new FileArtifactStore(path.join(tmp.dir, 'store'));
    const prompts = Array.from({ length: 7 }, (_, i) => ({ id: `r${i}`, prompt: `finding number ${i}` }));
    await putJsonl(store, 'prompts.jsonl', [
      ...prompts,
      { id: 'bad id!', prompt: 'x' },
      { id: 'r1', prompt: 'duplicate' },
    ]);
    const spec = (index: number) => ({
      promptsKey: 'prompts.jsonl',
      outputPrefix: 'out/',
      shard: { index, count: 2 },
      imagesPerPrompt: 1,
      params: { numInferenceSteps: 2 },
    });

    // Shard 0 (r0, r2, r4, r6), interrupted after two images.
    const controller = new AbortController();
    let images = 0;
    await expect(
      synthesizeDatasetShard(store, model, spec(0), {
        maxBatch: 1,
        signal: controller.signal,
        onImage: () => ++images === 2 && controller.abort(new Error('killed')),
      }),
    ).rejects.toThrow('killed');
    images = 0;
    const resumed = await synthesizeDatasetShard(store, model, spec(0), { maxBatch: 1, onImage: () => images++ });
    expect(images).toBe(2); // only the two missing ones
    expect(resumed).toMatchObject({ total: 4, completed: 4, accepted: 4, invalid: 2 });
    const other = await synthesizeDatasetShard(store, model, spec(1), {});
    expect(other).toMatchObject({ total: 3, completed: 3 });

    const lines: PairLine[] = [];
    for (const key of ['out/pairs-shard-00000-of-00002.jsonl', 'out/pairs-shard-00001-of-00002.jsonl']) {
      for await (const line of readJsonl<PairLine>(store, key)) if (line.ok) lines.push(line.value);
    }
    expect(lines.map((l) => l.id).sort()).toEqual(prompts.map((p) => p.id));
    // Resumed images are the images an uninterrupted run makes: seeds derive from the report id.
    const store2 = new FileArtifactStore(path.join(tmp.dir, 'store2'));
    await putJsonl(store2, 'prompts.jsonl', prompts);
    const fresh = await synthesizeDatasetShard(store2, model, spec(0), {});
    const again: PairLine[] = [];
    for await (const line of readJsonl<PairLine>(store2, store2.keyOf(fresh.pairs.uri)))
      if (line.ok) again.push(line.value);
    const first = lines.filter((l) => ['r0', 'r2', 'r4', 'r6'].includes(l.id!));
    expect(again.map((l) => l.image_sha256)).toEqual(first.map((l) => l.image_sha256));
    expect((await getBuffer(store, 'out/images/r3.png')).length).toBeGreaterThan(100);
  });
});
