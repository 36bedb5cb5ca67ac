import { ModelProto } from './gen/onnx/onnx';

/** The ONNX protobuf bytes of a model (what `.onnx` files hold). */
export function encodeModel(model: ModelProto): Uint8Array {
  return ModelProto.encode(model).finish();
}

/** Parses `.onnx` bytes. */
export function decodeModel(bytes: Uint8Array): ModelProto {
  return ModelProto.decode(bytes);
}
