export * from './dtype';
export * from './tensor';
export * from './value';
export {
  GraphBuilder,
  OPSET,
  IR_VERSION,
  castNodeProto,
  type NodeOptions,
  type Parameter,
  type GraphOptions,
} from './graph';
export { inferShapes, broadcastShapes, supportedOps, ShapeError, type ShapeContext, type TypeAndShape } from './shapes';
export { Ops, ops, RNG_SEED_INPUT, type ConvOptions, type PoolOptions } from './ops';
export { encodeModel, decodeModel } from './serialize';
export { saveModel, type ExternalDataOptions } from './external-data';
export { toFloat16Bits, fromFloat16Bits } from './float16';
export { convertToFloat16, type Float16Options } from './float16-model';
export * as onnx from './gen/onnx/onnx';
export { importOnnx, type ImportOptions } from './import';
