import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipTokenizer } from '@medsyn/clip-tokenizer';
import { TextToImageModel } from '@medsyn/diffusion';
import { encodeGrayPng, grayImage } from '@medsyn/imaging';
import { checkOnnxModel, makeTempDir } from '@medsyn/testing';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, encodeModel, ops, type Tensor } from '@medsyn/onnx-graph';
import { seededRandom } from '@medsyn/random';
import {
  GENERATOR_PRESETS,
  exportGenerator,
  loadCovidCxrExamples,
  modelCard,
  storeWeightsAsFloat16,
  trainGenerator,
  writeGeneratorTokenizer,
  type GeneratorExample,
} from '../src';

const config = GENERATOR_PRESETS.tiny;
const temp = makeTempDir('generator');
afterAll(() => temp.remove());

/** Bright "body" with two dark "lungs": the structure every sample of this toy set shares. */
function toyExample(id: number, prompt: string): GeneratorExample {
  const s = config.imageSize;
  const pixels = new Float32Array(s * s);
  for (let y = 0; y < s; y++) {
    for (let x = 0; x < s; x++) {
      const lung = (cx: number) => ((x - cx) / (s * 0.18)) ** 2 + ((y - s * 0.5) / (s * 0.32)) ** 2 < 1;
      pixels[y * s + x] = lung(s * 0.3) || lung(s * 0.7) ? -0.8 + 0.02 * id : 0.6;
    }
  }
  return {
    id: `toy-${id}`,
    pixels,
    prompt,
    source: { filename: `toy-${id}.png`, licence: 'CC BY 4.0', url: '', doi: '' },
  };
}

const examples = [
  toyExample(0, 'no acute cardiopulmonary process'),
  toyExample(1, 'bilateral patchy opacities'),
  toyExample(2, ''),
];

function tokenizer(): ClipTokenizer {
  const dir = path.join(temp.dir, 'tokenizer');
  if (!fs.existsSync(dir)) writeGeneratorTokenizer(dir, config);
  return ClipTokenizer.fromDirectory(dir);
}

const options = () => ({
  config,
  examples,
  tokenizer: tokenizer(),
  batchSize: 4,
  learningRate: 3e-3,
  warmupSteps: 5,
  seed: 7,
});

describe('the default generator', () => {
  it('learns the toy radiographs: the denoising loss falls well below its starting value', async () => {
    const { losses } = await trainGenerator({ ...options(), steps: 80 });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(losses.slice(-20))).toBeLessThan(0.5 * mean(losses.slice(0, 10)));
  });

  it('resumes from a checkpoint exactly where an uninterrupted run would be', async () => {
    const straight = await trainGenerator({ ...options(), steps: 4 });
    let saved: Awaited<ReturnType<import('@medsyn/training').Trainer['state']>> | undefined;
    await trainGenerator({
      ...options(),
      steps: 2,
      onStep: ({ step, trainer }) => void (step === 2 && (saved = trainer.state())),
    });
    const resumed = await trainGenerator({ ...options(), steps: 4, resume: saved });
    expect(resumed.losses).toEqual(straight.losses.slice(2));
    for (const [name, t] of straight.parameters) expect(resumed.parameters.get(name)!.data).toEqual(t.data);
  });

  it('exports the Stable Diffusion ONNX layout that the synthesizer loads and samples from', async () => {
    const { parameters, losses } = await trainGenerator({ ...options(), steps: 4 });
    const dir = path.join(temp.dir, 'export');
    const card = modelCard({
      config,
      examples,
      steps: 4,
      batchSize: 4,
      learningRate: 3e-3,
      seed: 7,
      unconditionalRate: 0.1,
      finalLoss: losses.at(-1)!,
      parameterCount: 1,
      trainingSeconds: 1,
      command: 'test',
    });
    exportGenerator(dir, config, parameters, card);
    for (const part of ['text_encoder', 'unet', 'vae_decoder'])
      checkOnnxModel(fs.readFileSync(path.join(dir, part, 'model.onnx')), part);
    expect(fs.readFileSync(path.join(dir, 'README.md'), 'utf8')).toMatch(/toy-1\.png \(CC BY 4\.0\)/);

    const model = await TextToImageModel.load(dir);
    const [image] = await model.generate([
      { prompt: 'no acute cardiopulmonary process', seed: 3n, numInferenceSteps: 4, guidanceScale: 2 },
    ]);
    expect([image!.image.width, image!.image.height]).toEqual([32, 32]);
    expect(Array.from(image!.image.data).every((v) => Number.isFinite(v) && v >= 0 && v <= 1)).toBe(true);
  });
});

describe('storeWeightsAsFloat16', () => {
  it('halves the file and keeps the outputs within float16 rounding of the float32 model', async () => {
    const g = new GraphBuilder('matmul');
    const x = g.input('x', 'float32', [2, 64]);
    const o = ops(g);
    g.output(
      o.add(o.matmul(x, g.parameter('w', randomTensor([64, 64], 1))), g.parameter('b', randomTensor([64], 2))),
      'y',
    );
    const full = encodeModel(g.toModelProto());
    const half = storeWeightsAsFloat16(full);
    expect(half.length).toBeLessThan(0.6 * full.length);
    checkOnnxModel(half, 'float16-weights');
    const input = randomTensor([2, 64], 3);
    const run = async (bytes: Uint8Array) => {
      const session = await ort.InferenceSession.create(bytes);
      return (await session.run({ x: new ort.Tensor('float32', input.data as Float32Array, [2, 64]) })).y!
        .data as Float32Array;
    };
    const [a, b] = [await run(full), await run(half)];
    const scale = Math.max(...a.map(Math.abs));
    expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeLessThan(2e-3 * scale);
    expect(Math.max(...a.map((v, i) => Math.abs(v - b[i]!)))).toBeGreaterThan(0);
  });
});

function randomTensor(dims: number[], seed: number): Tensor {
  const random = seededRandom(seed);
  const data = new Float32Array(dims.reduce((p, d) => p * d, 1)).map(() => random() * 2 - 1);
  return { dtype: 'float32', dims, data };
}

describe('loadCovidCxrExamples', () => {
  it('keeps frontal images under permissive licences and de-identifies their notes into prompts', async () => {
    const root = path.join(temp.dir, 'covid');
    fs.mkdirSync(path.join(root, 'images'), { recursive: true });
    const png = encodeGrayPng(grayImage(8, 6, new Float32Array(48).fill(0.5)));
    for (const f of ['a.png', 'b.png', 'c.png', 'd.png']) fs.writeFileSync(path.join(root, 'images', f), png);
    fs.writeFileSync(
      path.join(root, 'metadata.csv'),
      [
        'filename,folder,view,license,clinical_notes,url,doi',
        'a.png,images,PA,CC BY 4.0,"Seen by Dr. John Smith on 03/04/2020. Bilateral opacities.",https://example.org/a,10.1/a',
        'b.png,images,PA,CC BY-NC-SA,"Normal.",,',
        'c.png,images,L,CC BY 4.0,"Lateral view.",,',
        'd.png,images,AP,CC BY 3.0,,,',
      ].join('\n'),
    );
    const loaded = await loadCovidCxrExamples(root, { size: 4 });
    expect(loaded.map((e) => e.id)).toEqual(['a.png', 'd.png']);
    expect(loaded[0]!.pixels).toHaveLength(16);
    expect(loaded[0]!.prompt).toMatch(/^PA chest radiograph\. .*Bilateral opacities\./);
    expect(loaded[0]!.prompt).not.toMatch(/Smith|03\/04/);
    expect(loaded[1]!.prompt).toBe('AP chest radiograph.');
  });
});
