import type { TensorProto } from './gen/onnx/onnx';
import { dtypeOfOnnx, onnxTypeOf, typedArrayOf, type DType, type TypedArray } from './dtype';

/** A dense tensor held in a typed array (row-major). */
export interface Tensor {
  dtype: DType;
  dims: number[];
  data: TypedArray;
}

export const numel = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** A tensor from values; numbers become bigints for int64. */
export function tensor(dtype: DType, dims: number[], values?: ArrayLike<number> | TypedArray): Tensor {
  const data = typedArrayOf(dtype, numel(dims));
  if (values) {
    if (values.length !== data.length)
      throw new Error(`tensor of shape [${dims}] needs ${data.length} values, got ${values.length}`);
    if (data instanceof BigInt64Array) for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i] as number);
    else data.set(values as ArrayLike<number>);
  }
  return { dtype, dims: [...dims], data };
}

export const scalar = (dtype: DType, value: number): Tensor => tensor(dtype, [], [value]);
export const int64s = (values: number[]): Tensor => tensor('int64', [values.length], values);

/**
 * Serialises as raw little-endian bytes (the compact form every ONNX reader accepts). `share`
 * makes rawData a view of the tensor's memory instead of a copy (for multi-GB models written
 * once: the caller must not change the tensor before the proto is written).
 */
export function toTensorProto(name: string, t: Tensor, options: { share?: boolean } = {}): TensorProto {
  const view = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return {
    name,
    dims: [...t.dims],
    dataType: onnxTypeOf(t.dtype),
    rawData: options.share ? view : Buffer.from(view),
    floatData: [],
    int32Data: [],
    stringData: [],
    int64Data: [],
    doubleData: [],
    uint64Data: [],
    externalData: [],
  };
}

/** Reads a TensorProto in any of its encodings (raw bytes or typed fields). */
export function fromTensorProto(proto: TensorProto): Tensor {
  const dtype = dtypeOfOnnx(proto.dataType ?? 0);
  const dims = proto.dims.map(Number);
  const out = typedArrayOf(dtype, numel(dims));
  if (proto.externalData.length)
    throw new Error(`tensor ${proto.name}: external data is not supported; load the model with its data inlined`);
  if (proto.rawData && proto.rawData.length) {
    if (proto.rawData.length !== out.byteLength)
      throw new Error(`tensor ${proto.name}: ${proto.rawData.length} raw bytes for ${out.length} ${dtype} values`);
    new Uint8Array(out.buffer).set(proto.rawData);
  } else if (out instanceof BigInt64Array) {
    proto.int64Data.forEach((v, i) => (out[i] = BigInt(v)));
  } else {
    const source = dtype === 'float32' ? proto.floatData : dtype === 'float64' ? proto.doubleData : proto.int32Data;
    if (source.length && source.length !== out.length)
      throw new Error(`tensor ${proto.name}: ${source.length} values for shape [${dims}]`);
    (out as Exclude<TypedArray, BigInt64Array>).set(source);
  }
  return { dtype, dims, data: out };
}
