import type { DType, Tensor, TypedArray } from '@medsyn/onnx-graph';
import { typedArrayOf } from '@medsyn/onnx-graph';

/**
 * The safetensors format (huggingface/safetensors, docs "Format"): an 8-byte little-endian header
 * size N, N bytes of JSON { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__":
 * { string: string } }, then the tensors' bytes, little-endian, row-major. Readable by PyTorch,
 * JAX and numpy tools; medsyn stores checkpoints and weights in it.
 */
const CODES: Record<DType, string> = {
  float32: 'F32',
  float64: 'F64',
  float16: 'F16',
  int64: 'I64',
  int32: 'I32',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};
const DTYPES = Object.fromEntries(Object.entries(CODES).map(([d, c]) => [c, d as DType])) as Record<string, DType>;

export function encodeSafetensors(tensors: Map<string, Tensor>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const names = [...tensors.keys()].sort();
  for (const name of names) {
    const t = tensors.get(name)!;
    header[name] = { dtype: CODES[t.dtype], shape: t.dims, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors.get(name)!;
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, at);
    at += t.data.byteLength;
  }
  return out;
}

export function decodeSafetensors(bytes: Uint8Array): {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
} {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8) throw new Error('not a safetensors file: shorter than its 8-byte header size');
  const headerSize = Number(buf.readBigUInt64LE(0));
  if (8 + headerSize > buf.length) throw new Error('not a safetensors file: header size beyond the end of the data');
  const header = JSON.parse(buf.subarray(8, 8 + headerSize).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerSize;
  const tensors = new Map<string, Tensor>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as unknown as Record<string, string>;
      continue;
    }
    const dtype = DTYPES[entry.dtype];
    if (!dtype) throw new Error(`tensor ${name}: unsupported safetensors dtype ${entry.dtype}`);
    const [begin, end] = entry.data_offsets;
    const data: TypedArray = typedArrayOf(
      dtype,
      entry.shape.reduce((a, b) => a * b, 1),
    );
    if (end - begin !== data.byteLength || base + end > buf.length)
      throw new Error(`tensor ${name}: data offsets do not match its shape`);
    new Uint8Array(data.buffer).set(buf.subarray(base + begin, base + end));
    tensors.set(name, { dtype, dims: entry.shape, data });
  }
  return { tensors, metadata };
}
