import type { GraphBuilder, Value } from '@medsyn/onnx-graph';
import { linear, modelBuilder, uniform } from '@medsyn/model-zoo';
import { SCOPES, imageEncoder, projectionHead, textEncoder, type EncoderSpec } from '@medsyn/encoder-bundle';
import type { TrainingObjective } from '@medsyn/training';
import { PretrainingConfigError, type Method } from '@medsyn/config';
import { convirtLoss, gloriaLoss, mgcaLoss, type LossOutput } from './losses';

/** Batch inputs of a pre-training step besides the encoders' (pixel_values, input_ids, attention_mask). */
export const WORD_MASK_INPUT = 'word_mask';

/** method_options names (snake_case, as in configs) of each method, with the loss option each sets. */
const METHOD_OPTIONS: Record<Method, Record<string, string>> = {
  convirt: { image_to_text_weight: 'imageToTextWeight' },
  gloria: {
    temperature1: 'temperature1',
    temperature2: 'temperature2',
    temperature3: 'temperature3',
    global_weight: 'globalWeight',
    local_weight: 'localWeight',
  },
  mgca: {
    local_temperature: 'localTemperature',
    prototype_temperature: 'prototypeTemperature',
    sinkhorn_epsilon: 'sinkhornEpsilon',
    sinkhorn_iterations: 'sinkhornIterations',
    instance_weight: 'instanceWeight',
    token_weight: 'tokenWeight',
    prototype_weight: 'prototypeWeight',
    prototypes: '',
  },
};

export interface VlpModelOptions {
  method: Method;
  spec: EncoderSpec;
  batchSize: number;
  seed: number;
  /** The method's main temperature (0: the paper's): ConVIRT τ, GLoRIA 1/τ3, MGCA's instance τ. */
  temperature?: number;
  methodOptions?: Record<string, number>;
}

function lossOptions(options: VlpModelOptions): Record<string, number> {
  const known = METHOD_OPTIONS[options.method];
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(options.methodOptions ?? {})) {
    if (!(name in known))
      throw new PretrainingConfigError(
        `method_options.${name}`,
        `is not an option of ${options.method} (it has: ${Object.keys(known).join(', ')})`,
      );
    if (known[name]) out[known[name]] = value;
  }
  if (options.temperature) {
    if (options.method === 'gloria') out.temperature3 = 1 / options.temperature;
    else out.temperature = options.temperature;
  }
  return out;
}

/** The feature map local losses attend over: ResNet layer3 (stride 16, as GLoRIA), a ViT's patch tokens. */
function localMap(spec: EncoderSpec): string {
  return spec.image.architecture === 'vit' ? 'patches' : 'layer3';
}

/**
 * The forward pass and loss of one pre-training step: both encoders (training mode), their
 * projections into the joint space, and the method's objective. Parameter names are those of
 * the encoder bundle (`image_encoder.*`, `text_encoder.*`, `image_projection.*`,
 * `text_projection.*`) plus the method's heads (`image_local_projection.*`,
 * `text_local_projection.*`, `prototypes.weight`), so trained weights export by name.
 */
export function vlpObjective(g: GraphBuilder, options: VlpModelOptions): TrainingObjective {
  const { spec, batchSize } = options;
  const text = spec.text!;
  const d = spec.embeddingDim!;
  const b = modelBuilder(g, { seed: options.seed, training: true });
  const { o } = b;
  const pixels = g.input('pixel_values', 'float32', [
    batchSize,
    spec.image.channels ?? 1,
    spec.image.size,
    spec.image.size,
  ]);
  const { inputIds, attentionMask } = textInputsOf(g, batchSize, text.bert.maxLength);
  const wordMask = g.input(WORD_MASK_INPUT, 'float32', [batchSize, text.bert.maxLength]);

  const image = imageEncoder(b, pixels, spec.image);
  const report = textEncoder(b, inputIds, attentionMask, text);
  const imageEmbedding = projectionHead(
    b,
    SCOPES.imageProjection,
    image.features,
    image.featureDim,
    d,
    spec.projection,
  );
  const textEmbedding = projectionHead(b, SCOPES.textProjection, report.pooled, report.hidden, d, spec.projection);
  const settings = lossOptions(options);

  const locals = (): { regions: Value; words: Value } => {
    const map = image.maps.find((m) => m.name === localMap(spec))!;
    const [, channels, h, w] = map.value.shape as number[];
    const positions = o.transpose(o.reshape(map.value, [0, channels, h * w]), [0, 2, 1]); // [B, h*w, C]
    return {
      regions: linear(b, 'image_local_projection', positions, channels, d),
      words: linear(b, 'text_local_projection', report.tokens, report.hidden, d),
    };
  };

  let out: LossOutput;
  if (options.method === 'convirt') {
    out = convirtLoss(o, imageEmbedding, textEmbedding, settings);
  } else if (options.method === 'gloria') {
    const { regions, words } = locals();
    out = gloriaLoss(o, { image: imageEmbedding, text: textEmbedding, regions, words, wordMask }, settings);
  } else {
    const { regions, words } = locals();
    const count = options.methodOptions?.prototypes ?? 500;
    if (!Number.isInteger(count) || count < 2)
      throw new PretrainingConfigError('method_options.prototypes', `must be an integer >= 2, got ${count}`);
    const prototypes = g.scope('prototypes', () => g.parameter('weight', uniform(b, [count, d], 1 / Math.sqrt(d))));
    out = mgcaLoss(
      o,
      { image: imageEmbedding, text: textEmbedding, patches: regions, words, wordMask, prototypes },
      settings,
    );
  }
  return { loss: out.loss, metrics: out.parts };
}

function textInputsOf(g: GraphBuilder, batch: number, length: number): { inputIds: Value; attentionMask: Value } {
  // Static batch: the in-batch contrastive losses are built for exactly batchSize pairs.
  return {
    inputIds: g.input('input_ids', 'int64', [batch, length]),
    attentionMask: g.input('attention_mask', 'int64', [batch, length]),
  };
}
