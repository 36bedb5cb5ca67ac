import { decodeModel, onnx } from '@medsyn/onnx-graph';
import { BUNDLE_FILES, EncoderBundleError, type EncoderManifest } from './manifest';

/** A graph input or output: element type and dimensions (numbers, or symbols such as "batch"). */
export interface TensorSignature {
  name: string;
  elemType: 'float32' | 'int64' | string;
  dims: (number | string)[];
}

export interface OnnxSignature {
  inputs: TensorSignature[];
  outputs: TensorSignature[];
}

const ELEM_TYPES: Record<number, string> = {
  [onnx.TensorProto_DataType.FLOAT]: 'float32',
  [onnx.TensorProto_DataType.INT64]: 'int64',
  [onnx.TensorProto_DataType.FLOAT16]: 'float16',
  [onnx.TensorProto_DataType.DOUBLE]: 'float64',
  [onnx.TensorProto_DataType.INT32]: 'int32',
};

function describe(info: onnx.ValueInfoProto): TensorSignature {
  const tensorType = info.type?.tensorType;
  const elem = tensorType?.elemType ?? 0;
  return {
    name: info.name ?? '',
    elemType: ELEM_TYPES[elem] ?? `onnx type ${elem}`,
    dims: (tensorType?.shape?.dim ?? []).map((d) => d.dimValue ?? d.dimParam ?? '?'),
  };
}

/** The inputs (initialisers excluded, as old exports list them as inputs) and outputs of an ONNX model. */
export function onnxSignature(model: Uint8Array): OnnxSignature {
  const graph = decodeModel(model).graph;
  if (!graph) throw new EncoderBundleError('not an ONNX model: no graph');
  const initialisers = new Set(graph.initializer.map((t) => t.name));
  return {
    inputs: graph.input.filter((i) => !initialisers.has(i.name ?? '')).map(describe),
    outputs: graph.output.map(describe),
  };
}

const show = (t: TensorSignature) => `${t.elemType}[${t.dims.join(', ')}]`;

/**
 * Checks one tensor: its type and rank, and every dimension the model fixes to a number against
 * what the manifest says (`undefined` in `expected` accepts any size, a symbol accepts anything).
 */
function expectTensor(
  file: string,
  kind: 'input' | 'output',
  available: TensorSignature[],
  name: string,
  elemType: string,
  expected: (number | number[] | undefined)[],
  manifestField: string,
): void {
  const t = available.find((x) => x.name === name);
  if (!t)
    throw new EncoderBundleError(
      `${file} has no ${kind} named ${name} (${manifestField}); it has ${available.map((x) => x.name).join(', ') || 'none'}`,
    );
  if (t.elemType !== elemType || t.dims.length !== expected.length) {
    throw new EncoderBundleError(
      `${file} ${kind} ${name} is ${show(t)}, ${manifestField} needs ${elemType} of rank ${expected.length}`,
    );
  }
  expected.forEach((want, axis) => {
    const got = t.dims[axis];
    if (want === undefined || typeof got !== 'number') return;
    const allowed = Array.isArray(want) ? want : [want];
    if (!allowed.includes(got)) {
      throw new EncoderBundleError(
        `${file} ${kind} ${name} is ${show(t)}: axis ${axis} should be ${allowed.join(' or ')} per ${manifestField}`,
      );
    }
  });
}

/** Checks image_encoder.onnx against encoder.json's image section. */
export function checkImageEncoder(manifest: EncoderManifest, signature: OnnxSignature): void {
  const file = BUNDLE_FILES.imageEncoder;
  const { input, features, embedding, feature_maps: maps } = manifest.image;
  if (signature.inputs.length !== 1) {
    throw new EncoderBundleError(
      `${file} must have one input (${input.name}), it has ${signature.inputs.map((i) => i.name).join(', ')}`,
    );
  }
  expectTensor(
    file,
    'input',
    signature.inputs,
    input.name,
    'float32',
    [undefined, input.channels, input.size, input.size],
    'image.input',
  );
  expectTensor(
    file,
    'output',
    signature.outputs,
    features.name,
    'float32',
    [undefined, features.dim],
    'image.features',
  );
  if (embedding)
    expectTensor(
      file,
      'output',
      signature.outputs,
      embedding.name,
      'float32',
      [undefined, embedding.dim],
      'image.embedding',
    );
  maps.forEach((m, i) => {
    // A strided convolution rounds up (padding), a patch embedding rounds down.
    const side = [Math.ceil(input.size / m.stride), Math.floor(input.size / m.stride)];
    expectTensor(
      file,
      'output',
      signature.outputs,
      m.name,
      'float32',
      [undefined, m.channels, side, side],
      `image.feature_maps[${i}]`,
    );
  });
}

/** Checks text_encoder.onnx against encoder.json's text section. */
export function checkTextEncoder(manifest: EncoderManifest, signature: OnnxSignature): void {
  const file = BUNDLE_FILES.textEncoder;
  const text = manifest.text;
  if (!text) throw new EncoderBundleError(`the bundle has ${file} but encoder.json has no text section`);
  for (const name of ['input_ids', 'attention_mask']) {
    expectTensor(file, 'input', signature.inputs, name, 'int64', [undefined, text.max_length], 'text.max_length');
  }
  expectTensor(
    file,
    'output',
    signature.outputs,
    text.embedding.name,
    'float32',
    [undefined, text.embedding.dim],
    'text.embedding',
  );
  expectTensor(
    file,
    'output',
    signature.outputs,
    text.token_features.name,
    'float32',
    [undefined, text.max_length, text.token_features.dim],
    'text.token_features',
  );
}
