import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLIP_MAX_LENGTH, writeClipTokenizerFiles } from '@medsyn/clip-tokenizer';
import { SD_ONNX_MODEL_INDEX, SD21_SCHEDULER_CONFIG, toFloat16Bits } from '@medsyn/diffusion';
import {
  GraphBuilder,
  castNodeProto,
  decodeModel,
  encodeModel,
  fromTensorProto,
  numel,
  onnx,
  ops,
  toTensorProto,
  type Tensor,
} from '@medsyn/onnx-graph';
import { exportInferenceModel } from '@medsyn/training';
import type { GeneratorConfig } from './config';
import { denoiser, textEncoder, vocabularySize } from './model';

/** SD 2.x tokenizers pad with "!", and the export's special_tokens_map.json says so. */
export const PAD_TOKEN = '!';

/** Writes the tokenizer/ folder a generator with this config is trained and served with. */
export function writeGeneratorTokenizer(dir: string, config: GeneratorConfig): void {
  writeClipTokenizerFiles(dir, { mergeCount: config.text.mergeCount, padToken: PAD_TOKEN });
}

const writeJson = (file: string, value: unknown) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
};

const writeBytes = (file: string, bytes: Uint8Array) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
};

/**
 * Stores the float32 weights of at least `minElements` values as float16 initializers, each cast
 * back to float32 by a Cast node in front of the graph: half the file, float32 compute (onnxruntime
 * folds the Casts into constants when it loads the model). Rounding a weight to float16 changes it
 * by at most 2^-11 of its value.
 */
export function storeWeightsAsFloat16(model: Uint8Array, minElements = 1024): Uint8Array {
  const proto = decodeModel(model);
  const graph = proto.graph!;
  const casts: onnx.NodeProto[] = [];
  graph.initializer = graph.initializer.map((initializer) => {
    const tensor = fromTensorProto(initializer);
    if (tensor.dtype !== 'float32' || numel(tensor.dims) < minElements) return initializer;
    const stored = `${initializer.name}.float16`;
    casts.push(castNodeProto(`${initializer.name}.cast`, stored, initializer.name!, onnx.TensorProto_DataType.FLOAT));
    return toTensorProto(stored, {
      dtype: 'float16',
      dims: tensor.dims,
      data: toFloat16Bits(tensor.data as Float32Array),
    });
  });
  graph.node = [...casts, ...graph.node];
  return encodeModel(proto);
}

/**
 * Writes a trained generator in the Stable Diffusion ONNX export layout (the one
 * @medsyn/diffusion loads and diffusers' OnnxStableDiffusionPipeline reads): text_encoder,
 * unet, a parameter-free vae_decoder (bilinear upsampling, gray to RGB), tokenizer, PNDM
 * scheduler config with the training betas, model_index.json and the model card `card`.
 */
export function exportGenerator(
  dir: string,
  config: GeneratorConfig,
  parameters: Map<string, Tensor>,
  card: string,
): void {
  const s = config.imageSize;
  const hidden = config.text.hidden;
  writeBytes(
    path.join(dir, 'text_encoder', 'model.onnx'),
    storeWeightsAsFloat16(
      exportInferenceModel(
        (g) => ({
          last_hidden_state: textEncoder(g, g.input('input_ids', 'int32', ['batch', CLIP_MAX_LENGTH]), config, false),
        }),
        parameters,
        { name: 'text_encoder' },
      ),
    ),
  );
  writeJson(path.join(dir, 'text_encoder', 'config.json'), {
    architectures: ['CLIPTextModel'],
    hidden_size: hidden,
    num_hidden_layers: config.text.layers,
    num_attention_heads: config.text.heads,
    vocab_size: vocabularySize(config),
    max_position_embeddings: CLIP_MAX_LENGTH,
  });

  writeBytes(
    path.join(dir, 'unet', 'model.onnx'),
    storeWeightsAsFloat16(
      exportInferenceModel(
        (g) => ({
          out_sample: denoiser(
            g,
            g.input('sample', 'float32', ['batch', 1, s, s]),
            g.input('timestep', 'float32', ['batch']),
            g.input('encoder_hidden_states', 'float32', ['batch', 'sequence', hidden]),
            config,
            false,
          ),
        }),
        parameters,
        { name: 'unet' },
      ),
    ),
  );
  writeJson(path.join(dir, 'unet', 'config.json'), {
    _class_name: 'UNet2DConditionModel',
    sample_size: s,
    in_channels: 1,
    out_channels: 1,
    block_out_channels: config.unet.blockChannels,
    cross_attention_dim: hidden,
  });

  writeBytes(path.join(dir, 'vae_decoder', 'model.onnx'), upsamplingDecoder(s, config.outputScale));
  // Loaders derive the decoder's upsampling as 2^(len(block_out_channels) - 1), as diffusers does.
  writeJson(path.join(dir, 'vae_decoder', 'config.json'), {
    _class_name: 'AutoencoderKL',
    block_out_channels: Array.from({ length: Math.log2(config.outputScale) + 1 }, () => 1),
    latent_channels: 1,
    scaling_factor: 1.0,
    medsyn_note:
      'parameter-free decoder: the model denoises pixels; this upsamples them bilinearly and repeats gray into RGB',
  });

  writeGeneratorTokenizer(path.join(dir, 'tokenizer'), config);
  writeJson(path.join(dir, 'scheduler', 'scheduler_config.json'), SD21_SCHEDULER_CONFIG);
  writeJson(path.join(dir, 'model_index.json'), SD_ONNX_MODEL_INDEX);
  fs.writeFileSync(path.join(dir, 'README.md'), card);
}

/** latent_sample [batch, 1, s, s] in [-1, 1] -> sample [batch, 3, s*scale, s*scale]. */
function upsamplingDecoder(size: number, scale: number): Uint8Array {
  const g = new GraphBuilder('vae_decoder');
  const o = ops(g);
  const z = g.input('latent_sample', 'float32', ['batch', 1, size, size]);
  const up = scale === 1 ? z : o.resize(z, [1, 1, scale, scale], 'linear');
  g.output(o.clip(o.concat([up, up, up], 1), o.scalar('float32', -1), o.scalar('float32', 1)), 'sample');
  return encodeModel(g.toModelProto({ producer: 'medsyn generator' }));
}
