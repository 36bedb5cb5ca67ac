export * from './dtype';
export * from './tensor';
export * from './value';
export { GraphBuilder, OPSET, IR_VERSION, type NodeOptions, type Parameter, type GraphOptions } from './graph';
export { inferShapes, broadcastShapes, supportedOps, ShapeError, type ShapeContext, type TypeAndShape } from './shapes';
export { Ops, ops, RNG_SEED_INPUT, type ConvOptions, type PoolOptions } from './ops';
export { encodeModel, decodeModel } from './serialize';
export * as onnx from './gen/onnx/onnx';
export { importOnnx, type ImportOptions } from './import';
