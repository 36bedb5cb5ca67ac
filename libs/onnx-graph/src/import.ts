import {
  AttributeProto_AttributeType as AttrType,
  type AttributeProto,
  type ModelProto,
  type TypeProto,
} from './gen/onnx/onnx';
import { dtypeOfOnnx, isFloat } from './dtype';
import type { GraphBuilder } from './graph';
import { fromTensorProto, type Tensor } from './tensor';
import type { Attr, Attrs, Dim, Value } from './value';

export interface ImportOptions {
  /**
   * Which float initialisers become trainable parameters (default: every float initialiser with
   * a tensor shape, except BatchNorm running statistics). The others become constants, or
   * frozen parameters when `keepAsParameter` says so.
   */
  trainable?: (name: string, value: Tensor) => boolean;
  /** Renames graph inputs (e.g. to match a training graph's batch input names). */
  inputNames?: Record<string, string>;
}

const RUNNING_STATISTICS = /(running_mean|running_var|num_batches_tracked)$/;

const defaultTrainable = (name: string, value: Tensor) =>
  isFloat(value.dtype) && value.dims.length > 0 && !RUNNING_STATISTICS.test(name) && !name.startsWith('onnx::');

/**
 * Rebuilds an ONNX model (e.g. torchvision's ResNet exported with torch.onnx.export, opset
 * 13-17) inside g: graph inputs become g's inputs, float initialisers become parameters under
 * their names (so checkpoints map by name), other initialisers and Constant nodes become
 * constants, and every node is re-added through shape inference, so an unsupported operator
 * fails here naming it. BatchNormalization nodes keep their (inference) mode: training an
 * imported model updates its affine parameters while its running statistics stay frozen.
 * Export with `do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE` so that
 * BatchNorm is not folded into the convolutions and parameter names survive.
 * Returns the model's outputs by name.
 */
export function importOnnx(g: GraphBuilder, model: ModelProto, options: ImportOptions = {}): Record<string, Value> {
  const opset = model.opsetImport.find((o) => !o.domain)?.version ?? 0;
  if (opset < 13 || opset > 17)
    throw new Error(`model uses opset ${opset}; import supports 13 to 17 (re-export with opset_version=17)`);
  const graph = model.graph ?? fail('model has no graph');
  const trainable = options.trainable ?? defaultTrainable;
  const values = new Map<string, Value>();

  const initializers = new Map(graph.initializer.map((t) => [t.name!, fromTensorProto(t)]));
  for (const [name, value] of initializers) {
    if (isFloat(value.dtype) && (trainable(name, value) || RUNNING_STATISTICS.test(name))) {
      values.set(name, g.parameter(name, value, { trainable: trainable(name, value) }));
    } else {
      values.set(name, g.constant(value, name.replace(/[^A-Za-z0-9_.]/g, '_')));
    }
  }
  for (const input of graph.input) {
    if (initializers.has(input.name!)) continue;
    const name = options.inputNames?.[input.name!] ?? input.name!;
    const { dtype, shape } = typeOf(input.type, input.name!);
    values.set(input.name!, g.input(name, dtype, shape));
  }
  for (const node of graph.node) {
    const where = `${node.opType} node ${node.name || node.output[0]}`;
    if (node.domain && node.domain !== 'ai.onnx')
      throw new Error(`${where}: operators of domain ${node.domain} are not supported`);
    const attrs: Attrs = Object.fromEntries(node.attribute.map((a) => [a.name!, toAttr(a, where)]));
    if (node.opType === 'Constant') {
      const t = attrs.value;
      if (!t || t.type !== 'tensor') throw new Error(`${where}: only tensor-valued Constant nodes are supported`);
      values.set(node.output[0]!, g.constant(t.value, node.output[0]!.replace(/[^A-Za-z0-9_.]/g, '_')));
      continue;
    }
    const inputs = node.input.map((name) =>
      name ? (values.get(name) ?? fail(`${where}: input ${name} is not defined before it is used`)) : undefined,
    );
    const outputs = g.node(node.opType ?? fail(`${where}: node without an operator type`), inputs, attrs, {
      outputs: node.output.length,
      outputNames: [...node.output],
      ...(node.name ? { name: node.name } : {}),
    });
    outputs.forEach((v, i) => values.set(node.output[i]!, v));
  }
  return Object.fromEntries(
    graph.output.map((o) => [o.name!, values.get(o.name!) ?? fail(`output ${o.name} is never computed`)]),
  );
}

function typeOf(type: TypeProto | undefined, name: string): { dtype: ReturnType<typeof dtypeOfOnnx>; shape: Dim[] } {
  const tensorType = type?.tensorType ?? fail(`input ${name} is not a tensor`);
  const dims = tensorType.shape?.dim ?? fail(`input ${name} has no shape`);
  return {
    dtype: dtypeOfOnnx(tensorType.elemType ?? 0),
    shape: dims.map((d, i) => (d.dimValue !== undefined && d.dimValue > 0 ? d.dimValue : d.dimParam || `${name}_${i}`)),
  };
}

function toAttr(a: AttributeProto, where: string): Attr {
  switch (a.type) {
    case AttrType.INT:
      return { type: 'int', value: Number(a.i ?? 0) };
    case AttrType.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case AttrType.STRING:
      return { type: 'string', value: Buffer.from(a.s ?? new Uint8Array()).toString('utf8') };
    case AttrType.INTS:
      return { type: 'ints', value: a.ints.map(Number) };
    case AttrType.FLOATS:
      return { type: 'floats', value: [...a.floats] };
    case AttrType.STRINGS:
      return { type: 'strings', value: a.strings.map((s) => Buffer.from(s).toString('utf8')) };
    case AttrType.TENSOR:
      return { type: 'tensor', value: fromTensorProto(a.t!) };
    default:
      throw new Error(`${where}: attribute ${a.name} of type ${AttrType[a.type ?? 0]} is not supported`);
  }
}

function fail(message: string): never {
  throw new Error(message);
}
