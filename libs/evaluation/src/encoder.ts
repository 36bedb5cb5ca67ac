import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { FileArtifactStore, getBuffer, sha256Hex, type ArtifactStore } from '@medsyn/artifact-store';
import {
  BUNDLE_FILES,
  EncoderBundleError,
  readEncoderBundle,
  type EncoderManifest,
  type FeatureMapInfo,
} from '@medsyn/encoder-bundle';
import { resize, normalizeInto, type GrayImage } from '@medsyn/imaging';

export { EncoderBundleError, type EncoderManifest } from '@medsyn/encoder-bundle';
export type FeatureMapSpec = FeatureMapInfo;

/** A bundle opened for inference: its manifest, sessions and the digests results.json records. */
export interface FrozenEncoder {
  /** Where it was read from (a folder or store prefix). */
  location: string;
  manifest: EncoderManifest;
  image: ort.InferenceSession;
  text?: ort.InferenceSession;
  vocab?: string;
  /** sha256 of each file of the bundle. */
  digests: Record<string, string>;
  release(): Promise<void>;
}

/**
 * Opens a bundle (docs/encoder-bundle.md) through @medsyn/encoder-bundle, which checks the ONNX
 * inputs and outputs against encoder.json: a local folder, or a prefix in an artifact store.
 */
export async function openEncoderBundle(
  location: string | { store: ArtifactStore; prefix: string },
  options: { executionProvider?: 'cpu' | 'cuda' | 'webgpu' } = {},
): Promise<FrozenEncoder> {
  let store: ArtifactStore;
  let prefix: string;
  if (typeof location === 'string') {
    const dir = path.resolve(location);
    if (!fs.existsSync(path.join(dir, BUNDLE_FILES.manifest)))
      throw new EncoderBundleError(`not an encoder bundle: ${path.join(dir, BUNDLE_FILES.manifest)} not found`);
    store = new FileArtifactStore(path.dirname(dir));
    prefix = path.basename(dir);
  } else ({ store, prefix } = location);
  const bundle = await readEncoderBundle(store, prefix);
  const session = (bytes: Uint8Array) =>
    ort.InferenceSession.create(bytes, {
      executionProviders: [options.executionProvider ?? 'cpu'],
      graphOptimizationLevel: 'all',
    });
  const digests: Record<string, string> = {
    [BUNDLE_FILES.manifest]: sha256Hex(
      await getBuffer(store, `${prefix.replace(/\/+$/, '')}/${BUNDLE_FILES.manifest}`),
    ),
    [BUNDLE_FILES.imageEncoder]: sha256Hex(bundle.imageEncoder),
  };
  if (bundle.textEncoder) digests[BUNDLE_FILES.textEncoder] = sha256Hex(bundle.textEncoder);
  if (bundle.vocabTxt !== undefined)
    digests[bundle.manifest.text?.vocab ?? BUNDLE_FILES.vocab] = sha256Hex(bundle.vocabTxt);
  const image = await session(bundle.imageEncoder);
  const text = bundle.textEncoder ? await session(bundle.textEncoder) : undefined;
  return {
    location: typeof location === 'string' ? location : `${prefix}`,
    manifest: bundle.manifest,
    image,
    text,
    vocab: bundle.vocabTxt,
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
        if (!Number.isInteger(side))
          throw new EncoderBundleError(
            `feature map "${spec.name}": input size ${size} is not a multiple of its stride ${spec.stride}`,
          );
        // Shared memory: the dense heads' worker threads read the cache without a copy.
        const floats = n * spec.channels * side * side;
        return { spec, size: side, data: new Float32Array(new SharedArrayBuffer(floats * 4)) };
      })
    : undefined;
  const plane = channels * size * size;
  for (let start = 0; start < n; start += batchSize) {
    const count = Math.min(batchSize, n - start);
    const pixels = new Float32Array(count * plane);
    for (let b = 0; b < count; b++) encoderInput(images[start + b]!.load(), manifest, pixels, b * plane);
    const fetches = [
      manifest.image.features.name,
      ...(D ? [manifest.image.embedding!.name] : []),
      ...(maps ? maps.map((m) => m.spec.name) : []),
    ];
    const out = await encoder.image.run(
      { [manifest.image.input.name]: new ort.Tensor('float32', pixels, [count, channels, size, size]) },
      fetches,
    );
    const take = (name: string, dims: number[], target: Float32Array, per: number) => {
      const t = out[name]!;
      if (t.dims.join(',') !== dims.join(','))
        throw new EncoderBundleError(
          `image_encoder.onnx output "${name}" has shape [${t.dims.join(', ')}], encoder.json says [${dims.join(', ')}]`,
        );
      target.set(t.data as Float32Array, start * per);
    };
    take(manifest.image.features.name, [count, F], features, F);
    if (D && embeddings) take(manifest.image.embedding!.name, [count, D], embeddings, D);
    for (const m of maps ?? [])
      take(m.spec.name, [count, m.spec.channels, m.size, m.size], m.data, m.spec.channels * m.size * m.size);
    options.onProgress?.(start + count, n);
  }
  return {
    features,
    featureDim: F,
    embeddings,
    embeddingDim: D,
    maps,
    index: new Map(images.map((im, i) => [im.id, i])),
  };
}
