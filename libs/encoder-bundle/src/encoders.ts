import { GraphBuilder, type Tensor, type Value } from '@medsyn/onnx-graph';
import {
  bert,
  linear,
  modelBuilder,
  resnet,
  resnetChannels,
  vit,
  type BertConfig,
  type ModelBuilder,
} from '@medsyn/model-zoo';
import type { ImageArchitecture } from '@medsyn/config';
import { exportInferenceModel } from '@medsyn/training';
import { BUNDLE_FILES, BUNDLE_FORMAT, EncoderBundleError, type EncoderManifest, type FeatureMapInfo } from './manifest';

export type { ImageArchitecture };

export interface ImageEncoderSpec {
  architecture: ImageArchitecture;
  /** Square input side in pixels. */
  size: number;
  /** Input channels the grayscale image is repeated over (1 for radiograph models, 3 for ImageNet ones). */
  channels?: number;
  /** Normalisation of [0, 1] intensities: (v - mean) / std. */
  mean?: number;
  std?: number;
  /** ResNet stem / first-stage width (torchvision: 64); smaller for CPU tests. */
  width?: number;
  /** ViT sizes (patch 16 at 224 px is ViT-B/16's layout). */
  vit?: { patchSize: number; layers: number; heads: number; hidden: number; mlpDim: number };
}

export interface TextEncoderSpec {
  architecture: 'bert';
  bert: Omit<BertConfig, 'classes'>;
  lowercase?: boolean;
}

/** The encoders of a bundle and of the training graph that makes it. */
export interface EncoderSpec {
  image: ImageEncoderSpec;
  text?: TextEncoderSpec;
  /** Joint embedding width; omit for an image-only encoder without projection. */
  embeddingDim?: number;
  /** ConVIRT's projection is a one-hidden-layer MLP; GLoRIA and MGCA use a linear map. Default linear. */
  projection?: 'linear' | 'mlp';
}

/** Parameter name prefixes in training graphs, checkpoints and bundles. */
export const SCOPES = {
  image: 'image_encoder',
  text: 'text_encoder',
  imageProjection: 'image_projection',
  textProjection: 'text_projection',
} as const;

export interface ImageEncoderOutputs {
  features: Value;
  featureDim: number;
  /** Multi-scale maps [batch, channels, side, side], fine to coarse. */
  maps: (FeatureMapInfo & { value: Value })[];
}

export interface TextEncoderOutputs {
  /** BERT's pooled output [batch, hidden]: the report's global feature. */
  pooled: Value;
  /** Every token's hidden state [batch, maxLength, hidden]. */
  tokens: Value;
  hidden: number;
}

const RESNET_DEPTH = { resnet18: 18, resnet34: 34, resnet50: 50, resnet101: 101 } as const;

export function checkEncoderSpec(spec: EncoderSpec): void {
  const { image, text } = spec;
  if (!Number.isInteger(image.size) || image.size < 16)
    throw new EncoderBundleError(`image.size must be an integer >= 16, got ${image.size}`);
  if (image.architecture === 'vit' && !image.vit)
    throw new EncoderBundleError('image.vit sizes are needed for the vit architecture');
  if (!(image.architecture in RESNET_DEPTH) && image.architecture !== 'vit')
    throw new EncoderBundleError(
      `image.architecture ${image.architecture} is not one of resnet18, resnet34, resnet50, resnet101, vit`,
    );
  if (text && !spec.embeddingDim)
    throw new EncoderBundleError('a text encoder needs embeddingDim (the joint space its text_embedding lives in)');
  if (spec.embeddingDim !== undefined && (!Number.isInteger(spec.embeddingDim) || spec.embeddingDim < 1))
    throw new EncoderBundleError(`embeddingDim must be a positive integer, got ${spec.embeddingDim}`);
}

/** The image backbone under `image_encoder.` (torchvision names after the prefix). */
export function imageEncoder(b: ModelBuilder, pixels: Value, spec: ImageEncoderSpec): ImageEncoderOutputs {
  const { o } = b;
  return b.g.scope(SCOPES.image, () => {
    const inChannels = spec.channels ?? 1;
    if (spec.architecture === 'vit') {
      const v = spec.vit!;
      const out = vit(b, pixels, { ...v, imageSize: spec.size, inChannels });
      const grid = Math.floor(spec.size / v.patchSize);
      // Patch tokens as a map [batch, hidden, grid, grid] (the class token is the global feature).
      const map = o.reshape(o.transpose(out.patches, [0, 2, 1]), [0, v.hidden, grid, grid]);
      return {
        features: out.features,
        featureDim: v.hidden,
        maps: [{ name: 'patches', stride: v.patchSize, channels: v.hidden, value: map }],
      };
    }
    const config = { depth: RESNET_DEPTH[spec.architecture], width: spec.width, inChannels };
    const out = resnet(b, pixels, config);
    const width = spec.width ?? 64;
    const last = resnetChannels(config);
    const expansion = last / (width * 8);
    const maps = [
      { name: 'stem', stride: 2, channels: width, value: out.stem },
      ...out.stages.map((value, i) => ({
        name: `layer${i + 1}`,
        stride: 4 * 2 ** i,
        channels: width * 2 ** i * expansion,
        value,
      })),
    ];
    return { features: out.features, featureDim: last, maps };
  });
}

/** The BERT text encoder under `text_encoder.` (Hugging Face names after the prefix). */
export function textEncoder(
  b: ModelBuilder,
  inputIds: Value,
  attentionMask: Value,
  spec: TextEncoderSpec,
): TextEncoderOutputs {
  return b.g.scope(SCOPES.text, () => {
    const out = bert(b, inputIds, attentionMask, spec.bert);
    return { pooled: out.pooled, tokens: out.tokens, hidden: spec.bert.hidden };
  });
}

/** Projection into the joint space: Linear, or Linear-ReLU-Linear (torch Sequential names 0 and 2). */
export function projectionHead(
  b: ModelBuilder,
  name: string,
  x: Value,
  inDim: number,
  outDim: number,
  kind: 'linear' | 'mlp' = 'linear',
): Value {
  if (kind === 'linear') return linear(b, name, x, inDim, outDim);
  return b.g.scope(name, () => linear(b, '2', b.o.relu(linear(b, '0', x, inDim, inDim)), inDim, outDim));
}

export const imageInput = (g: GraphBuilder, spec: ImageEncoderSpec): Value =>
  g.input('pixel_values', 'float32', ['batch', spec.channels ?? 1, spec.size, spec.size]);

export function textInputs(g: GraphBuilder, spec: TextEncoderSpec): { inputIds: Value; attentionMask: Value } {
  const length = spec.bert.maxLength;
  return {
    inputIds: g.input('input_ids', 'int64', ['batch', length]),
    attentionMask: g.input('attention_mask', 'int64', ['batch', length]),
  };
}

/** image_encoder.onnx's outputs: features, embedding (with a projection) and the feature maps. */
function buildImageExport(g: GraphBuilder, spec: EncoderSpec): Record<string, Value> {
  const b = modelBuilder(g, { training: false });
  const out = imageEncoder(b, imageInput(g, spec.image), spec.image);
  const outputs: Record<string, Value> = { image_features: out.features };
  if (spec.embeddingDim)
    outputs.image_embedding = projectionHead(
      b,
      SCOPES.imageProjection,
      out.features,
      out.featureDim,
      spec.embeddingDim,
      spec.projection,
    );
  for (const m of out.maps) outputs[m.name] = m.value;
  return outputs;
}

function buildTextExport(g: GraphBuilder, spec: EncoderSpec): Record<string, Value> {
  const text = spec.text!;
  const b = modelBuilder(g, { training: false });
  const { inputIds, attentionMask } = textInputs(g, text);
  const out = textEncoder(b, inputIds, attentionMask, text);
  return {
    text_embedding: projectionHead(
      b,
      SCOPES.textProjection,
      out.pooled,
      out.hidden,
      spec.embeddingDim!,
      spec.projection,
    ),
    token_features: out.tokens,
  };
}

/**
 * Every parameter and buffer of the spec's encoders and projections as a seeded random
 * initialisation would make them (the same initialisers the training graph uses).
 */
export function initialEncoderParameters(spec: EncoderSpec, seed = 0): Map<string, Tensor> {
  checkEncoderSpec(spec);
  const parameters = new Map<string, Tensor>();
  const g = new GraphBuilder('init');
  const b = modelBuilder(g, { seed, training: false });
  const image = imageEncoder(b, imageInput(g, spec.image), spec.image);
  if (spec.embeddingDim)
    projectionHead(b, SCOPES.imageProjection, image.features, image.featureDim, spec.embeddingDim, spec.projection);
  if (spec.text) {
    const { inputIds, attentionMask } = textInputs(g, spec.text);
    const text = textEncoder(b, inputIds, attentionMask, spec.text);
    projectionHead(b, SCOPES.textProjection, text.pooled, text.hidden, spec.embeddingDim!, spec.projection);
  }
  for (const [name, p] of g.parameters) parameters.set(name, p.initial);
  return parameters;
}

/** encoder.json for a spec (and the outputs that buildImageExport / buildTextExport name). */
export function manifestFor(spec: EncoderSpec, method: string, lineage?: EncoderManifest['lineage']): EncoderManifest {
  checkEncoderSpec(spec);
  const g = new GraphBuilder('shapes');
  const image = imageEncoder(modelBuilder(g), imageInput(g, spec.image), spec.image);
  const manifest: EncoderManifest = {
    format: BUNDLE_FORMAT,
    method,
    embedding_dim: spec.embeddingDim ?? image.featureDim,
    image: {
      architecture: spec.image.architecture,
      input: {
        name: 'pixel_values',
        channels: spec.image.channels ?? 1,
        size: spec.image.size,
        mean: spec.image.mean ?? 0.5,
        std: spec.image.std ?? 0.5,
      },
      features: { name: 'image_features', dim: image.featureDim },
      feature_maps: image.maps.map(({ name, stride, channels }) => ({ name, stride, channels })),
    },
  };
  if (spec.embeddingDim) manifest.image.embedding = { name: 'image_embedding', dim: spec.embeddingDim };
  if (spec.text) {
    manifest.text = {
      architecture: spec.text.architecture,
      max_length: spec.text.bert.maxLength,
      lowercase: spec.text.lowercase ?? true,
      vocab: BUNDLE_FILES.vocab,
      embedding: { name: 'text_embedding', dim: spec.embeddingDim! },
      token_features: { name: 'token_features', dim: spec.text.bert.hidden },
    };
  }
  if (lineage) manifest.lineage = lineage;
  return manifest;
}

/** The files of a bundle, in memory. */
export interface EncoderBundle {
  manifest: EncoderManifest;
  imageEncoder: Uint8Array;
  textEncoder?: Uint8Array;
  /** tokenizer/vocab.txt; required with a text encoder. */
  vocabTxt?: string;
}

export interface ExportBundleOptions {
  /** The pre-training method (`convirt`, `gloria`, `mgca`) or what made the weights (`random`, `imagenet`). */
  method: string;
  /** Trained weights by parameter name (`image_encoder.layer1.0.conv1.weight`...); omit for a seeded random init. */
  parameters?: Map<string, Tensor>;
  seed?: number;
  vocabTxt?: string;
  lineage?: EncoderManifest['lineage'];
}

/**
 * Exports inference ONNX models of a spec's encoders with the given weights (or a seeded random
 * initialisation: the evaluator's baseline) into a bundle ready for writeEncoderBundle.
 */
export function exportEncoderBundle(spec: EncoderSpec, options: ExportBundleOptions): EncoderBundle {
  checkEncoderSpec(spec);
  if (spec.text && !options.vocabTxt)
    throw new EncoderBundleError('a bundle with a text encoder needs its tokenizer vocabulary (vocabTxt)');
  const parameters = options.parameters ?? initialEncoderParameters(spec, options.seed ?? 0);
  const bundle: EncoderBundle = {
    manifest: manifestFor(spec, options.method, options.lineage),
    imageEncoder: exportInferenceModel((g) => buildImageExport(g, spec), parameters, { name: 'image_encoder' }),
  };
  if (spec.text) {
    bundle.textEncoder = exportInferenceModel((g) => buildTextExport(g, spec), parameters, { name: 'text_encoder' });
    bundle.vocabTxt = options.vocabTxt;
  }
  return bundle;
}
