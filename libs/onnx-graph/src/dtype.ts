import { TensorProto_DataType as OnnxType } from './gen/onnx/onnx';

/** Element types the builder knows, named as numpy / onnxruntime name them. */
export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';

export type TypedArray =
  Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int8Array | Uint8Array;

interface DTypeInfo {
  onnx: OnnxType;
  bytes: number;
  array: new (length: number) => TypedArray;
}

const INFO: Record<DType, DTypeInfo> = {
  float32: { onnx: OnnxType.FLOAT, bytes: 4, array: Float32Array },
  float64: { onnx: OnnxType.DOUBLE, bytes: 8, array: Float64Array },
  // float16 values are kept as their IEEE bit patterns.
  float16: { onnx: OnnxType.FLOAT16, bytes: 2, array: Uint16Array },
  int64: { onnx: OnnxType.INT64, bytes: 8, array: BigInt64Array },
  int32: { onnx: OnnxType.INT32, bytes: 4, array: Int32Array },
  int8: { onnx: OnnxType.INT8, bytes: 1, array: Int8Array },
  uint8: { onnx: OnnxType.UINT8, bytes: 1, array: Uint8Array },
  bool: { onnx: OnnxType.BOOL, bytes: 1, array: Uint8Array },
};

export const onnxTypeOf = (dtype: DType): OnnxType => INFO[dtype].onnx;
export const bytesPerElement = (dtype: DType): number => INFO[dtype].bytes;
export const typedArrayOf = (dtype: DType, length: number): TypedArray => new INFO[dtype].array(length);
export const isFloat = (dtype: DType): boolean => dtype === 'float32' || dtype === 'float64' || dtype === 'float16';

export function dtypeOfOnnx(type: number): DType {
  const found = (Object.keys(INFO) as DType[]).find((d) => INFO[d].onnx === type);
  if (!found) throw new Error(`unsupported ONNX element type ${OnnxType[type] ?? type}`);
  return found;
}
