import * as fs from 'node:fs';
import * as path from 'node:path';
import { TensorProto_DataLocation, type ModelProto, type TensorProto } from './gen/onnx/onnx';
import { encodeModel } from './serialize';

export interface ExternalDataOptions {
  /** The weights file, relative to the model's folder (optimum names it `model.onnx_data`). */
  location: string;
  /** Initialisers of at least this many bytes go to the weights file (onnx's default: 1024). */
  threshold?: number;
}

/**
 * ONNX's "external data" (onnx/onnx docs/ExternalData.md): each large initialiser's bytes go
 * to one weights file at an offset that is a multiple of 4096 (so runtimes can mmap it), and the
 * protobuf keeps only `location`, `offset` and `length`. A protobuf message cannot exceed 2 GB,
 * so this is how models like Stable Diffusion's UNet (3.5 GB in float32) are stored. Tensors
 * are written one by one from their own memory: no second copy of the weights is made.
 * Returns the bytes written to the weights file.
 */
export function saveModel(file: string, model: ModelProto, externalData?: ExternalDataOptions): number {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (!externalData) {
    fs.writeFileSync(file, encodeModel(model));
    return 0;
  }
  const threshold = externalData.threshold ?? 1024;
  const fd = fs.openSync(path.join(path.dirname(file), externalData.location), 'w');
  let offset = 0;
  const externalise = (t: TensorProto): TensorProto => {
    const raw = t.rawData;
    if (!raw || raw.length < threshold) return t;
    offset = Math.ceil(offset / 4096) * 4096;
    let written = 0;
    while (written < raw.length) written += fs.writeSync(fd, raw, written, raw.length - written, offset + written);
    const at = offset;
    offset += raw.length;
    return {
      ...t,
      rawData: Buffer.alloc(0),
      dataLocation: TensorProto_DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: externalData.location },
        { key: 'offset', value: String(at) },
        { key: 'length', value: String(raw.length) },
      ],
    };
  };
  try {
    const graph = model.graph!;
    // One initialiser at a time, so that the caller may drop each tensor's memory once written.
    const initializer = graph.initializer.map(externalise);
    fs.writeFileSync(file, encodeModel({ ...model, graph: { ...graph, initializer } }));
  } finally {
    fs.closeSync(fd);
  }
  return offset;
}
