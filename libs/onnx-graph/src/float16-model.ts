import {
  TensorProto_DataType as OnnxType,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type TypeProto,
} from './gen/onnx/onnx';
import { toFloat16Bits } from './float16';
import { castNodeProto } from './graph';

/** Largest finite float16; weights and constants beyond it are clamped, not turned into infinities. */
const FLOAT16_MAX = 65504;

/** Inputs that ONNX requires to stay float32 whatever the data type (`tensor(float)` in the spec). */
const FLOAT32_INPUTS: Record<string, number[]> = { Resize: [1, 2] };

export interface Float16Options {
  /**
   * Ops computed in float32 together with everything upstream of them (up to the graph inputs),
   * their float results cast to float16 where float16 nodes read them. Default: Cos and Sin, the
   * sinusoidal timestep embedding, which diffusers also computes in float32 before casting to the
   * UNet's dtype (angles up to 1000 radians have no useful float16 precision).
   */
  float32Ops?: string[];
}

/**
 * The model computing in float16, as a half-precision export does (optimum-cli --fp16, and
 * onnxconverter-common's convert_float_to_float16 with keep_io_types=False): float32 inputs,
 * outputs, initialisers and Casts become float16, constants clamped to +-65504. Initialisers must be
 * inline (rawData); convert before moving weights to external data.
 */
export function convertToFloat16(model: ModelProto, options: Float16Options = {}): ModelProto {
  const graph = model.graph;
  if (!graph) throw new Error('convertToFloat16: the model has no graph');
  const float32Ops = new Set(options.float32Ops ?? ['Cos', 'Sin']);
  const producers = new Map<string, NodeProto>();
  for (const node of graph.node) for (const output of node.output) producers.set(output, node);

  // The float32 region: the chosen ops and their ancestors.
  const kept = new Set<NodeProto>();
  const stack = graph.node.filter((n) => float32Ops.has(n.opType ?? ''));
  while (stack.length) {
    const node = stack.pop()!;
    if (kept.has(node)) continue;
    kept.add(node);
    for (const input of node.input) {
      const producer = producers.get(input);
      if (producer) stack.push(producer);
    }
  }
  const needsFloat32 = (node: NodeProto, index: number) =>
    kept.has(node) || (FLOAT32_INPUTS[node.opType ?? ''] ?? []).includes(index);

  // Which values are float32 in the source model: inputs, initialisers, node outputs by op.
  const isFloat = new Set<string>();
  for (const v of graph.input) if (elemType(v.type) === OnnxType.FLOAT) isFloat.add(v.name ?? '');
  for (const t of graph.initializer) if (t.dataType === OnnxType.FLOAT) isFloat.add(t.name ?? '');
  for (const node of graph.node) if (producesFloat(node, isFloat)) for (const o of node.output) if (o) isFloat.add(o);

  // An initialiser becomes float16 unless a float32 reader needs it as it is.
  const initializers = new Map(graph.initializer.map((t) => [t.name ?? '', t]));
  const keptInitializers = new Set<string>();
  for (const node of graph.node)
    node.input.forEach((input, i) => initializers.has(input) && needsFloat32(node, i) && keptInitializers.add(input));
  const float16Values = new Set<string>();
  for (const name of isFloat) {
    const producer = producers.get(name);
    if (producer ? !kept.has(producer) : !keptInitializers.has(name)) float16Values.add(name);
  }

  const casts: NodeProto[] = [];
  const castName = new Map<string, string>();
  const castTo = (value: string, to: OnnxType) => {
    const key = `${value}\u0000${to}`;
    let name = castName.get(key);
    if (!name) {
      name = `${value}_as_${to === OnnxType.FLOAT16 ? 'float16' : 'float32'}`;
      castName.set(key, name);
      casts.push(castNodeProto(name, value, name, to));
    }
    return name;
  };
  const nodes = graph.node.map((node) => {
    const float32 = kept.has(node);
    const input = node.input.map((name, i) => {
      if (!isFloat.has(name)) return name;
      const wantFloat32 = needsFloat32(node, i);
      const isHalf = float16Values.has(name);
      if (wantFloat32 && isHalf) return castTo(name, OnnxType.FLOAT);
      if (!wantFloat32 && !isHalf) return castTo(name, OnnxType.FLOAT16);
      return name;
    });
    const attribute = float32
      ? node.attribute
      : node.attribute.map((a) => {
          if (node.opType === 'Cast' && a.name === 'to' && a.i === OnnxType.FLOAT) return { ...a, i: OnnxType.FLOAT16 };
          if (a.t && a.t.dataType === OnnxType.FLOAT) return { ...a, t: halfTensor(a.t) };
          return a;
        });
    return { ...node, input, attribute };
  });
  // Casts go right before their first reader: topological order holds since their sources come earlier.
  const ordered: NodeProto[] = [];
  const pending = new Map(casts.map((c) => [c.output[0]!, c]));
  for (const node of nodes) {
    for (const input of node.input) {
      const cast = pending.get(input);
      if (cast) {
        ordered.push(cast);
        pending.delete(input);
      }
    }
    ordered.push(node);
  }

  return {
    ...model,
    graph: {
      ...graph,
      node: ordered,
      initializer: graph.initializer.map((t) => (float16Values.has(t.name ?? '') ? halfTensor(t) : t)),
      input: graph.input.map((v) => ({ ...v, type: halfType(v.type) })),
      output: graph.output.map((v) => (float16Values.has(v.name ?? '') ? { ...v, type: halfType(v.type) } : v)),
      valueInfo: graph.valueInfo.map((v) => (float16Values.has(v.name ?? '') ? { ...v, type: halfType(v.type) } : v)),
    },
  };
}

const elemType = (type: TypeProto | undefined) => type?.tensorType?.elemType;

function halfType(type: TypeProto | undefined): TypeProto | undefined {
  if (!type?.tensorType || type.tensorType.elemType !== OnnxType.FLOAT) return type;
  return { ...type, tensorType: { ...type.tensorType, elemType: OnnxType.FLOAT16 } };
}

/**
 * Whether a node's outputs are float32 in the source model: a Cast says so in its `to`; every
 * other op medsyn builds returns the type of its first floating input (shape ops, Shape and
 * comparisons return integers or booleans).
 */
function producesFloat(node: NodeProto, isFloat: Set<string>): boolean {
  const op = node.opType ?? '';
  if (op === 'Cast') return node.attribute.find((a) => a.name === 'to')?.i === OnnxType.FLOAT;
  if (['Shape', 'Size', 'Equal', 'Less', 'Greater', 'Not', 'ArgMax', 'ArgMin', 'NonZero'].includes(op)) return false;
  if (op === 'Where') return isFloat.has(node.input[1]!);
  if (op === 'ConstantOfShape' || op === 'Constant')
    return node.attribute.some((a) => a.t?.dataType === OnnxType.FLOAT);
  return node.input.some((i, k) => isFloat.has(i) && !(FLOAT32_INPUTS[op] ?? []).includes(k));
}

function halfTensor(t: TensorProto): TensorProto {
  if (t.externalData.length)
    throw new Error(`convertToFloat16: tensor ${t.name} has external data; convert before externalising`);
  const raw = t.rawData && t.rawData.length ? t.rawData : undefined;
  const values = raw ? new Float32Array(Uint8Array.from(raw).buffer) : Float32Array.from(t.floatData);
  for (let i = 0; i < values.length; i++) values[i] = Math.max(-FLOAT16_MAX, Math.min(FLOAT16_MAX, values[i]!));
  const bits = toFloat16Bits(values);
  return {
    ...t,
    dataType: OnnxType.FLOAT16,
    rawData: Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength),
    floatData: [],
  };
}
