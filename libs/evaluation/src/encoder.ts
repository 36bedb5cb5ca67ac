import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { resize, normalizeInto, type GrayImage } from '@medsyn/imaging';

/** An encoder bundle that does not follow docs/encoder-bundle.md, or whose ONNX disagrees with encoder.json. */
export class EncoderBundleError extends Error {
  override name = 'EncoderBundleError';
}

export interface FeatureMapSpec {
  name: string;
  stride: number;
  channels: number;
}

/** encoder.json, the part the evaluator reads (docs/encoder-bundle.md). */
export interface EncoderManifest {
  format: string;
  method?: string;
  embedding_dim?: number;
  image: {
    architecture: string;
    input: { name: string; channels: number; size: number; mean: number; std: number };
    features: { name: string; dim: number };
    embedding?: { name: string; dim: number };
    feature_maps: FeatureMapSpec[];
  };
  text?: {
    architecture: string;
    max_length: number;
    lowercase: boolean;
    vocab: string;
    embedding: { name: string; dim: number };
    token_features?: { name: string; dim: number };
  };
  lineage?: unknown;
}

export const BUNDLE_FORMAT = 'medsyn.encoder-bundle/v1';

/** A bundle opened for inference: its manifest, sessions and the digests results.json records. */
export interface FrozenEncoder {
  dir: string;
  manifest: EncoderManifest;
  image: ort.InferenceSession;
  text?: ort.InferenceSession;
  vocab?: string;
  /** sha256 of each file of the bundle. */
  digests: Record<string, string>;
  release(): Promise<void>;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function checkManifest(m: EncoderManifest, file: string): void {
  const need = (cond: unknown, field: string) => {
    if (!cond) throw new EncoderBundleError(`${file}: missing or invalid field "${field}"`);
  };
  need(m.format === BUNDLE_FORMAT, `format (expected "${BUNDLE_FORMAT}")`);
  need(m.image, 'image');
  need(m.image.input?.name, 'image.input.name');
  need(Number.isInteger(m.image.input?.channels) && m.image.input.channels > 0, 'image.input.channels');
  need(Number.isInteger(m.image.input?.size) && m.image.input.size > 0, 'image.input.size');
  need(Number.isFinite(m.image.input?.mean) && m.image.input.std > 0, 'image.input.mean/std');
  need(m.image.features?.name && m.image.features.dim > 0, 'image.features');
  need(Array.isArray(m.image.feature_maps), 'image.feature_maps');
  for (const [i, fm] of m.image.feature_maps.entries()) need(fm.name && fm.stride > 0 && fm.channels > 0, `image.feature_maps[${i}]`);
}

/** Opens a bundle folder: parses encoder.json and checks the ONNX inputs and outputs against it. */
export async function openEncoderBundle(dir: string, options: { executionProvider?: 'cpu' | 'cuda' | 'webgpu' } = {}): Promise<FrozenEncoder> {
  const manifestFile = path.join(dir, 'encoder.json');
  if (!fs.existsSync(manifestFile)) throw new EncoderBundleError(`not an encoder bundle: ${manifestFile} not found`);
  const manifestBytes = fs.readFileSync(manifestFile);
  let manifest: EncoderManifest;
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8')) as EncoderManifest;
  } catch {
    throw new EncoderBundleError(`${manifestFile} is not valid JSON`);
  }
  checkManifest(manifest, manifestFile);
  const digests: Record<string, string> = { 'encoder.json': sha256(manifestBytes) };
  const load = async (name: string) => {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new EncoderBundleError(`bundle ${dir} lacks ${name}`);
    const bytes = fs.readFileSync(file);
    digests[name] = sha256(bytes);
    return ort.InferenceSession.create(bytes, { executionProviders: [options.executionProvider ?? 'cpu'], graphOptimizationLevel: 'all' });
  };
  const image = await load('image_encoder.onnx');
  const expectOutputs = (session: ort.InferenceSession, names: string[], which: string) => {
    for (const name of names) if (!session.outputNames.includes(name)) throw new EncoderBundleError(`${which} has no output "${name}" named in encoder.json (outputs: ${session.outputNames.join(', ')})`);
  };
  if (!image.inputNames.includes(manifest.image.input.name)) throw new EncoderBundleError(`image_encoder.onnx has no input "${manifest.image.input.name}" named in encoder.json (inputs: ${image.inputNames.join(', ')})`);
  expectOutputs(image, [manifest.image.features.name, ...(manifest.image.embedding ? [manifest.image.embedding.name] : []), ...manifest.image.feature_maps.map((f) => f.name)], 'image_encoder.onnx');
  let text: ort.InferenceSession | undefined;
  let vocab: string | undefined;
  if (manifest.text) {
    text = await load('text_encoder.onnx');
    for (const input of ['input_ids', 'attention_mask']) if (!text.inputNames.includes(input)) throw new EncoderBundleError(`text_encoder.onnx has no input "${input}"`);
    expectOutputs(text, [manifest.text.embedding.name], 'text_encoder.onnx');
    const vocabFile = path.join(dir, manifest.text.vocab);
    if (!fs.existsSync(vocabFile)) throw new EncoderBundleError(`bundle ${dir} lacks ${manifest.text.vocab}`);
    const vocabBytes = fs.readFileSync(vocabFile);
    digests[manifest.text.vocab] = sha256(vocabBytes);
    vocab = vocabBytes.toString('utf8');
  }
  return {
    dir,
    manifest,
    image,
    text,
    vocab,
    digests,
    release: async () => {
      await image.release();
      await text?.release();
    },
  };
}

/** Encoder outputs for a set of images, computed once and reused by every task, fraction and seed. */
export interface EncodedImages {
  /** Pooled features [n, F]. */
  features: Float32Array;
  featureDim: number;
  /** Joint-space embeddings [n, D], when the encoder has a projection. */
  embeddings?: Float32Array;
  embeddingDim?: number;
  /** Feature maps per image (fine to coarse), when asked for. */
  maps?: { spec: FeatureMapSpec; size: number; data: Float32Array }[];
  /** Row of each image id. */
  index: Map<string, number>;
}

/** Resizes the whole image (no crop, so boxes and masks map by scaling) and normalises it per encoder.json. */
export function encoderInput(image: GrayImage, manifest: EncoderManifest, out: Float32Array, offset: number): void {
  const { size, channels, mean, std } = manifest.image.input;
  normalizeInto(resize(image, size, size), out, offset, channels, mean, std);
}

/**
 * Runs the frozen image encoder once over the images (in batches) and keeps its outputs: the
 * pooled features always, the feature maps when `withMaps` (segmentation and detection).
 * Checks every output's shape against encoder.json.
 */
export async function encodeImages(
  encoder: FrozenEncoder,
  images: { id: string; load: () => GrayImage }[],
  options: { batchSize?: number; withMaps?: boolean; onProgress?: (done: number, total: number) => void } = {},
): Promise<EncodedImages> {
  const { manifest } = encoder;
  const { size, channels } = manifest.image.input;
  const batchSize = options.batchSize ?? 16;
  const F = manifest.image.features.dim;
  const D = manifest.image.embedding?.dim;
  const n = images.length;
  const features = new Float32Array(n * F);
  const embeddings = D ? new Float32Array(n * D) : undefined;
  const maps = options.withMaps
    ? manifest.image.feature_maps.map((spec) => {
        const side = size / spec.stride;
        if (!Number.isInteger(side)) throw new EncoderBundleError(`feature map "${spec.name}": input size ${size} is not a multiple of its stride ${spec.stride}`);
        return { spec, size: side, data: new Float32Array(n * spec.channels * side * side) };
      })
    : undefined;
  const plane = channels * size * size;
  for (let start = 0; start < n; start += batchSize) {
    const count = Math.min(batchSize, n - start);
    const pixels = new Float32Array(count * plane);
    for (let b = 0; b < count; b++) encoderInput(images[start + b]!.load(), manifest, pixels, b * plane);
    const fetches = [manifest.image.features.name, ...(D ? [manifest.image.embedding!.name] : []), ...(maps ? maps.map((m) => m.spec.name) : [])];
    const out = await encoder.image.run({ [manifest.image.input.name]: new ort.Tensor('float32', pixels, [count, channels, size, size]) }, fetches);
    const take = (name: string, dims: number[], target: Float32Array, per: number) => {
      const t = out[name]!;
      if (t.dims.join(',') !== dims.join(',')) throw new EncoderBundleError(`image_encoder.onnx output "${name}" has shape [${t.dims.join(', ')}], encoder.json says [${dims.join(', ')}]`);
      target.set(t.data as Float32Array, start * per);
    };
    take(manifest.image.features.name, [count, F], features, F);
    if (D && embeddings) take(manifest.image.embedding!.name, [count, D], embeddings, D);
    for (const m of maps ?? []) take(m.spec.name, [count, m.spec.channels, m.size, m.size], m.data, m.spec.channels * m.size * m.size);
    options.onProgress?.(start + count, n);
  }
  return { features, featureDim: F, embeddings, embeddingDim: D, maps, index: new Map(images.map((im, i) => [im.id, i])) };
}
