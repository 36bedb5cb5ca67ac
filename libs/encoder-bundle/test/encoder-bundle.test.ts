import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { FileArtifactStore } from '@medsyn/artifact-store';
import { checkOnnxModel, makeTempDir } from '@medsyn/testing';
import {
  EncoderBundleError,
  exportEncoderBundle,
  initialEncoderParameters,
  readEncoderBundle,
  validateEncoderBundle,
  writeEncoderBundle,
  type EncoderBundle,
  type EncoderSpec,
} from '../src';

const temp = makeTempDir('encoder-bundle');
afterAll(() => temp.remove());
const store = new FileArtifactStore(temp.dir);

const VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'lung', '##s', 'clear'].join('\n') + '\n';
const SPEC: EncoderSpec = {
  image: { architecture: 'resnet18', size: 32, width: 8 },
  text: {
    architecture: 'bert',
    bert: { vocabSize: 8, hidden: 16, layers: 1, heads: 2, intermediate: 32, maxLength: 12, maxPositions: 16 },
  },
  embeddingDim: 8,
  projection: 'mlp',
};

async function run(model: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(model);
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

const pixels = (batch: number, channels: number, size: number, fill = (i: number) => (i % 17) / 17) =>
  new ort.Tensor(
    'float32',
    Float32Array.from({ length: batch * channels * size * size }, (_, i) => fill(i)),
    [batch, channels, size, size],
  );

describe('encoder bundles', () => {
  let bundle: EncoderBundle;
  beforeAll(() => {
    bundle = exportEncoderBundle(SPEC, {
      method: 'random',
      seed: 3,
      vocabTxt: VOCAB,
      lineage: { inputs: [{ uri: 'file:///x', sha256: 'ab' }] },
    });
  });

  it('exports random-init encoders that follow the layout, pass onnx.checker and run', async () => {
    expect(bundle.manifest).toMatchObject({
      format: 'medsyn.encoder-bundle/v1',
      method: 'random',
      embedding_dim: 8,
      image: {
        input: { name: 'pixel_values', channels: 1, size: 32, mean: 0.5, std: 0.5 },
        features: { name: 'image_features', dim: 64 },
        embedding: { name: 'image_embedding', dim: 8 },
        feature_maps: [
          { name: 'stem', stride: 2, channels: 8 },
          { name: 'layer1', stride: 4, channels: 8 },
          { name: 'layer2', stride: 8, channels: 16 },
          { name: 'layer3', stride: 16, channels: 32 },
          { name: 'layer4', stride: 32, channels: 64 },
        ],
      },
      text: {
        max_length: 12,
        lowercase: true,
        vocab: 'tokenizer/vocab.txt',
        embedding: { dim: 8 },
        token_features: { dim: 16 },
      },
    });
    checkOnnxModel(bundle.imageEncoder, 'image_encoder');
    checkOnnxModel(bundle.textEncoder!, 'text_encoder');
    const image = await run(bundle.imageEncoder, { pixel_values: pixels(3, 1, 32) });
    expect(image.image_features.dims).toEqual([3, 64]);
    expect(image.image_embedding.dims).toEqual([3, 8]);
    expect(image.stem.dims).toEqual([3, 8, 16, 16]);
    expect(image.layer4.dims).toEqual([3, 64, 1, 1]);
    const ids = new ort.Tensor('int64', BigInt64Array.from([2n, 5n, 6n, 7n, 3n, ...new Array(7).fill(0n)]), [1, 12]);
    const mask = new ort.Tensor('int64', BigInt64Array.from([1n, 1n, 1n, 1n, 1n, ...new Array(7).fill(0n)]), [1, 12]);
    const text = await run(bundle.textEncoder!, { input_ids: ids, attention_mask: mask });
    expect(text.text_embedding.dims).toEqual([1, 8]);
    expect(text.token_features.dims).toEqual([1, 12, 16]);
  });

  it('writes a bundle to the store and reads it back validated', async () => {
    const refs = await writeEncoderBundle(store, 'runs/r1/encoder', bundle);
    expect(Object.keys(refs).sort()).toEqual([
      'encoder.json',
      'image_encoder.onnx',
      'text_encoder.onnx',
      'tokenizer/vocab.txt',
    ]);
    const read = await readEncoderBundle(store, 'runs/r1/encoder');
    expect(read.manifest).toEqual(bundle.manifest);
    expect(Buffer.compare(Buffer.from(read.imageEncoder), Buffer.from(bundle.imageEncoder))).toBe(0);
    expect(read.vocabTxt).toBe(VOCAB);
  });

  it('puts the given weights, by parameter name, into the exported models', async () => {
    const seeded = initialEncoderParameters(SPEC, 11);
    expect(seeded.has('image_encoder.layer1.0.conv1.weight')).toBe(true);
    expect(seeded.has('text_encoder.encoder.layer.0.attention.self.query.weight')).toBe(true);
    expect(seeded.has('text_projection.2.weight')).toBe(true);
    const fromWeights = exportEncoderBundle(SPEC, { method: 'random', parameters: seeded, vocabTxt: VOCAB });
    const fromSeed = exportEncoderBundle(SPEC, { method: 'random', seed: 11, vocabTxt: VOCAB });
    const a = await run(fromWeights.imageEncoder, { pixel_values: pixels(1, 1, 32) });
    const b = await run(fromSeed.imageEncoder, { pixel_values: pixels(1, 1, 32) });
    const c = await run(bundle.imageEncoder, { pixel_values: pixels(1, 1, 32) });
    expect(Array.from(a.image_embedding.data as Float32Array)).toEqual(
      Array.from(b.image_embedding.data as Float32Array),
    );
    expect(Array.from(a.image_embedding.data as Float32Array)).not.toEqual(
      Array.from(c.image_embedding.data as Float32Array),
    );
    const missing = new Map(seeded);
    missing.delete('image_projection.0.weight');
    expect(() => exportEncoderBundle(SPEC, { method: 'x', parameters: missing, vocabTxt: VOCAB })).toThrow(
      /image_projection.0.weight/,
    );
  });

  it('reads an image-only bundle exported from PyTorch (torchvision ResNet-18, dynamic batch)', async () => {
    execFileSync('/usr/bin/python3', [join(__dirname, 'python', 'torchvision_bundle.py'), join(temp.dir, 'tv'), '64']);
    const read = await readEncoderBundle(store, 'tv');
    expect(read.textEncoder).toBeUndefined();
    const out = await run(read.imageEncoder, { pixel_values: pixels(2, 3, 64) });
    expect(out.image_features.dims).toEqual([2, 512]);
    expect(out.layer2.dims).toEqual([2, 128, 8, 8]);
  });

  it('refuses bundles whose files disagree with encoder.json, naming the mismatch', async () => {
    const broken = (edit: (b: EncoderBundle) => void) => {
      const copy: EncoderBundle = { ...bundle, manifest: JSON.parse(JSON.stringify(bundle.manifest)) };
      edit(copy);
      return () => validateEncoderBundle(copy);
    };
    expect(broken((b) => (b.manifest.image.features.dim = 512))).toThrow(
      /image_encoder.onnx output image_features is float32\[.*, 64\]: axis 1 should be 512 per image.features/,
    );
    expect(broken((b) => (b.manifest.image.input.size = 64))).toThrow(
      /input pixel_values .* axis 2 should be 64 per image.input/,
    );
    expect(broken((b) => (b.manifest.image.feature_maps[1].name = 'c2'))).toThrow(
      /has no output named c2 \(image.feature_maps\[1\]\)/,
    );
    expect(broken((b) => b.manifest.image.feature_maps.reverse())).toThrow(/fine to coarse/);
    expect(broken((b) => (b.manifest.text!.max_length = 64))).toThrow(
      /text_encoder.onnx input input_ids .* per text.max_length/,
    );
    expect(broken((b) => (b.manifest.embedding_dim = 9))).toThrow(/image.embedding.dim is 8 but embedding_dim is 9/);
    expect(broken((b) => delete b.textEncoder)).toThrow(/has a text section but the bundle has no text_encoder.onnx/);
    expect(broken((b) => delete b.vocabTxt)).toThrow(/tokenizer\/vocab.txt is missing/);
    expect(broken((b) => ((b.manifest as { format: string }).format = 'v0'))).toThrow(/format is "v0"/);
    expect(broken((b) => delete (b.manifest.image as Partial<EncoderBundle['manifest']['image']>).features)).toThrow(
      /image.features is missing/,
    );
    expect(broken((b) => (b.textEncoder = b.imageEncoder))).toThrow(EncoderBundleError);
    await expect(readEncoderBundle(store, 'nothing/here')).rejects.toThrow(
      /encoder.json is missing under nothing\/here/,
    );
  });
});
