import type { DigestClaim } from '@medsyn/artifact-store';

/** `encoder.json` as docs/encoder-bundle.md specifies it (snake_case, as written on disk). */
export const BUNDLE_FORMAT = 'medsyn.encoder-bundle/v1';

export const BUNDLE_FILES = {
  manifest: 'encoder.json',
  imageEncoder: 'image_encoder.onnx',
  textEncoder: 'text_encoder.onnx',
  vocab: 'tokenizer/vocab.txt',
} as const;

export interface NamedDim {
  name: string;
  dim: number;
}

export interface FeatureMapInfo {
  name: string;
  stride: number;
  channels: number;
}

export interface EncoderManifest {
  format: typeof BUNDLE_FORMAT;
  method: string;
  /** Width of the joint image-text space; an image-only bundle without projection gives image.features.dim. */
  embedding_dim: number;
  image: {
    architecture: string;
    input: { name: string; channels: number; size: number; mean: number; std: number };
    features: NamedDim;
    embedding?: NamedDim;
    /** Fine to coarse. */
    feature_maps: FeatureMapInfo[];
  };
  text?: {
    architecture: string;
    max_length: number;
    lowercase: boolean;
    vocab: string;
    embedding: NamedDim;
    token_features: NamedDim;
  };
  lineage?: {
    inputs: DigestClaim[];
    config_sha256?: string;
    code_version?: string;
  };
}

/** A bundle that does not follow the layout; the message names the file and field at fault. */
export class EncoderBundleError extends Error {
  override readonly name = 'EncoderBundleError';
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function field(parent: Json, path: string, key: string): unknown {
  if (!(key in parent) || parent[key] === undefined)
    throw new EncoderBundleError(`encoder.json: ${path}${key} is missing`);
  return parent[key];
}

function str(parent: Json, path: string, key: string): string {
  const v = field(parent, path, key);
  if (typeof v !== 'string' || v === '')
    throw new EncoderBundleError(`encoder.json: ${path}${key} must be a non-empty string`);
  return v;
}

function num(parent: Json, path: string, key: string, { positive = true, integer = true } = {}): number {
  const v = field(parent, path, key);
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || (positive && v <= 0)) {
    throw new EncoderBundleError(
      `encoder.json: ${path}${key} must be a ${positive ? 'positive ' : ''}${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

function obj(parent: Json, path: string, key: string): Json {
  const v = field(parent, path, key);
  if (!isObject(v)) throw new EncoderBundleError(`encoder.json: ${path}${key} must be an object`);
  return v;
}

const namedDim = (parent: Json, path: string, key: string): NamedDim => {
  const o = obj(parent, path, key);
  return { name: str(o, `${path}${key}.`, 'name'), dim: num(o, `${path}${key}.`, 'dim') };
};

/** Checks the structure of a parsed encoder.json and returns it typed; throws EncoderBundleError naming the field. */
export function parseEncoderManifest(value: unknown): EncoderManifest {
  if (!isObject(value)) throw new EncoderBundleError('encoder.json must be a JSON object');
  const format = str(value, '', 'format');
  if (format !== BUNDLE_FORMAT)
    throw new EncoderBundleError(
      `encoder.json: format is ${JSON.stringify(format)}, this reader knows ${BUNDLE_FORMAT}`,
    );
  const image = obj(value, '', 'image');
  const input = obj(image, 'image.', 'input');
  const maps = field(image, 'image.', 'feature_maps');
  if (!Array.isArray(maps)) throw new EncoderBundleError('encoder.json: image.feature_maps must be an array');
  const featureMaps = maps.map((m, i) => {
    const path = `image.feature_maps[${i}].`;
    if (!isObject(m)) throw new EncoderBundleError(`encoder.json: ${path.slice(0, -1)} must be an object`);
    return { name: str(m, path, 'name'), stride: num(m, path, 'stride'), channels: num(m, path, 'channels') };
  });
  featureMaps.forEach((m, i) => {
    if (i > 0 && m.stride <= featureMaps[i - 1].stride) {
      throw new EncoderBundleError(
        `encoder.json: image.feature_maps must go from fine to coarse; ${m.name} (stride ${m.stride}) follows stride ${featureMaps[i - 1].stride}`,
      );
    }
  });
  const manifest: EncoderManifest = {
    format: BUNDLE_FORMAT,
    method: str(value, '', 'method'),
    embedding_dim: num(value, '', 'embedding_dim'),
    image: {
      architecture: str(image, 'image.', 'architecture'),
      input: {
        name: str(input, 'image.input.', 'name'),
        channels: num(input, 'image.input.', 'channels'),
        size: num(input, 'image.input.', 'size'),
        mean: num(input, 'image.input.', 'mean', { positive: false, integer: false }),
        std: num(input, 'image.input.', 'std', { integer: false }),
      },
      features: namedDim(image, 'image.', 'features'),
      feature_maps: featureMaps,
    },
  };
  if (image.embedding !== undefined) manifest.image.embedding = namedDim(image, 'image.', 'embedding');
  if (value.text !== undefined) {
    const text = obj(value, '', 'text');
    const lowercase = field(text, 'text.', 'lowercase');
    if (typeof lowercase !== 'boolean')
      throw new EncoderBundleError('encoder.json: text.lowercase must be true or false');
    manifest.text = {
      architecture: str(text, 'text.', 'architecture'),
      max_length: num(text, 'text.', 'max_length'),
      lowercase,
      vocab: str(text, 'text.', 'vocab'),
      embedding: namedDim(text, 'text.', 'embedding'),
      token_features: namedDim(text, 'text.', 'token_features'),
    };
  }
  for (const [where, dim] of [
    ['image.embedding.dim', manifest.image.embedding?.dim],
    ['text.embedding.dim', manifest.text?.embedding.dim],
  ] as const) {
    if (dim !== undefined && dim !== manifest.embedding_dim) {
      throw new EncoderBundleError(`encoder.json: ${where} is ${dim} but embedding_dim is ${manifest.embedding_dim}`);
    }
  }
  if (value.lineage !== undefined) {
    const lineage = obj(value, '', 'lineage');
    const inputs = field(lineage, 'lineage.', 'inputs');
    if (!Array.isArray(inputs)) throw new EncoderBundleError('encoder.json: lineage.inputs must be an array');
    manifest.lineage = {
      inputs: inputs.map((x, i) => {
        if (!isObject(x)) throw new EncoderBundleError(`encoder.json: lineage.inputs[${i}] must be an object`);
        return { uri: str(x, `lineage.inputs[${i}].`, 'uri'), sha256: str(x, `lineage.inputs[${i}].`, 'sha256') };
      }),
    };
    if (lineage.config_sha256 !== undefined) manifest.lineage.config_sha256 = str(lineage, 'lineage.', 'config_sha256');
    if (lineage.code_version !== undefined) manifest.lineage.code_version = str(lineage, 'lineage.', 'code_version');
  }
  return manifest;
}
