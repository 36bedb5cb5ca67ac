export {
  modelBuilder,
  linear,
  conv2d,
  batchNorm2d,
  layerNorm,
  embedding,
  attention,
  dropout,
  uniform,
  normal,
  type ModelBuilder,
  type Conv2dOptions,
} from './builder';
export { resnet, resnetChannels, type ResNetConfig, type ResNetOutputs } from './resnet';
export { vit, VIT_PRESETS, type VitConfig, type VitOutputs } from './vit';
export { bert, BERT_PRESETS, type BertConfig, type BertOutputs } from './bert';
export { unet, silu, groupNorm, UNET_PRESETS, type UNetConfig } from './unet';
export {
  unetDecoder,
  detectionHead,
  type DecoderNorm,
  type UNetDecoderConfig,
  type DetectionHeadConfig,
  type DetectionOutputs,
} from './heads';
