export {
  BUNDLE_FORMAT,
  BUNDLE_FILES,
  EncoderBundleError,
  parseEncoderManifest,
  type EncoderManifest,
  type FeatureMapInfo,
  type NamedDim,
} from './manifest';
export {
  onnxSignature,
  checkImageEncoder,
  checkTextEncoder,
  type OnnxSignature,
  type TensorSignature,
} from './signature';
export {
  SCOPES,
  checkEncoderSpec,
  imageEncoder,
  textEncoder,
  projectionHead,
  imageInput,
  textInputs,
  initialEncoderParameters,
  manifestFor,
  exportEncoderBundle,
  type EncoderSpec,
  type ImageEncoderSpec,
  type TextEncoderSpec,
  type ImageArchitecture,
  type ImageEncoderOutputs,
  type TextEncoderOutputs,
  type EncoderBundle,
  type ExportBundleOptions,
} from './encoders';
export { writeEncoderBundle, readEncoderBundle, validateEncoderBundle } from './store';
