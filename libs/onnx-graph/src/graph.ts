import {
  AttributeProto_AttributeType as AttrType,
  type AttributeProto,
  type ModelProto,
  type NodeProto,
  type ValueInfoProto,
} from './gen/onnx/onnx';
import { onnxTypeOf, type DType } from './dtype';
import { inferShapes, ShapeError, type TypeAndShape } from './shapes';
import { toTensorProto, type Tensor } from './tensor';
import { formatShape, type Attr, type Attrs, type GraphNode, type Shape, type Value } from './value';

/** The opset medsyn emits: the newest that Debian's python3-onnx 1.12 checker knows. */
export const OPSET = 17;
/** ONNX IR version of opset 17 (ONNX 1.12). */
export const IR_VERSION = 8;

export interface NodeOptions {
  /** Number of outputs (default 1). */
  outputs?: number;
  /** Node name; default derived from the op and the current scope. */
  name?: string;
  /** Output types and shapes, for nodes whose shapes depend on run-time values (e.g. a Reshape to Shape(x)). */
  outputTypes?: TypeAndShape[];
  /** Exact output names (as in an imported model); default derived from the node name. */
  outputNames?: string[];
  domain?: string;
}

export interface Parameter {
  readonly value: Value;
  /** Whether training updates it (frozen parameters and buffers keep their value). */
  readonly trainable: boolean;
  /** The value it starts with. */
  readonly initial: Tensor;
}

export interface GraphOptions {
  /**
   * Parameters become graph inputs instead of initialisers: the form of a training-step graph,
   * whose caller feeds the current parameters and receives the updated ones.
   */
  parametersAsInputs?: boolean;
}

/**
 * Builds an ONNX graph: typed values with shapes (sizes may be symbols such as "batch"),
 * parameters and constants as initialisers, and nodes whose output shapes are inferred as they are
 * added, so that a mistake fails here naming the node, not later inside a runtime.
 */
export class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers = new Map<string, Tensor>();
  readonly parameters = new Map<string, Parameter>();
  /** New values of non-trainable state computed by the graph (e.g. BatchNorm running statistics), by parameter name. */
  readonly stateUpdates = new Map<string, Value>();
  /**
   * Facts about nodes that their ONNX form does not carry, by node name, for passes such as
   * autodiff (e.g. that a BatchNormalization's mean and variance inputs are its batch's statistics).
   */
  readonly annotations = new Map<string, Record<string, unknown>>();
  private readonly values = new Map<string, Value>();
  private readonly producers = new Map<string, GraphNode>();
  private readonly scopes: string[] = [];
  private readonly nodeNames = new Set<string>();
  private counter = 0;

  constructor(
    readonly name = 'medsyn',
    readonly options: GraphOptions = {},
  ) {}

  /** A graph input (a batch tensor). */
  input(name: string, dtype: DType, shape: Shape): Value {
    const value = this.define(name, dtype, shape);
    this.inputs.push(value);
    return value;
  }

  /** A named parameter with its initial value; trainable unless told otherwise (e.g. running statistics). */
  parameter(name: string, initial: Tensor, options: { trainable?: boolean } = {}): Value {
    const value = this.define(this.scoped(name), initial.dtype, initial.dims);
    if (this.options.parametersAsInputs) this.inputs.push(value);
    else this.initializers.set(value.name, initial);
    this.parameters.set(value.name, { value, trainable: options.trainable ?? true, initial });
    return value;
  }

  /** Records that running the graph computes a new value for the non-trainable parameter `parameter` (a buffer). */
  updateState(parameter: Value, next: Value): void {
    const p = this.parameters.get(parameter.name);
    if (!p || p.trainable) throw new Error(`${parameter.name} is not a non-trainable parameter (buffer)`);
    this.stateUpdates.set(parameter.name, next);
  }

  /** A constant tensor (an initialiser that is not a parameter). */
  constant(t: Tensor, hint = 'const'): Value {
    const value = this.define(this.uniqueName(hint), t.dtype, t.dims);
    this.initializers.set(value.name, t);
    return value;
  }

  /** The value of v when it is a constant known now (an initialiser that is not a trainable parameter). */
  constantValue(v: Value): Tensor | undefined {
    if (this.parameters.has(v.name)) return undefined;
    return this.initializers.get(v.name);
  }

  /** Adds one operator; returns its outputs with inferred types and shapes. */
  node(op: string, inputs: readonly (Value | undefined)[], attrs: Attrs = {}, options: NodeOptions = {}): Value[] {
    const outputCount = options.outputs ?? 1;
    const name = options.name ? this.scoped(options.name) : this.uniqueName(op);
    for (const v of inputs)
      if (v && !this.values.has(v.name))
        throw new Error(`${op} ${name}: input ${v.name} does not belong to this graph`);
    let types: TypeAndShape[];
    try {
      types =
        options.outputTypes ??
        inferShapes({
          op,
          inputs,
          attrs,
          outputCount,
          constant: (i) => (inputs[i] ? this.constantValue(inputs[i]!) : undefined),
          unknown: () => `${name}_d${this.counter++}`,
        });
    } catch (error) {
      if (error instanceof ShapeError) {
        throw new ShapeError(
          `node ${name}: ${error.message} (inputs ${inputs.map((v) => (v ? `${v.name}${formatShape(v.shape)}` : '-')).join(', ')})`,
        );
      }
      throw error;
    }
    if (types.length < outputCount) throw new ShapeError(`node ${name}: ${op} has at most ${types.length} outputs`);
    const outputs = types
      .slice(0, outputCount)
      .map((t, i) =>
        this.define(options.outputNames?.[i] ?? (outputCount === 1 ? name : `${name}:${i}`), t.dtype, t.shape),
      );
    const node: GraphNode = {
      op,
      name,
      inputs: inputs.map((v) => v?.name ?? ''),
      outputs: outputs.map((v) => v.name),
      attrs,
      domain: options.domain ?? '',
    };
    this.nodeNames.add(name);
    this.nodes.push(node);
    for (const o of node.outputs) this.producers.set(o, node);
    return outputs;
  }

  /** Adds one single-output operator. */
  op(op: string, inputs: readonly (Value | undefined)[], attrs: Attrs = {}, options: NodeOptions = {}): Value {
    return this.node(op, inputs, attrs, options)[0]!;
  }

  /** Marks v as a graph output, under name when given. */
  output(v: Value, name?: string): Value {
    if (name && name !== v.name && this.values.has(name))
      throw new Error(`output name ${name} is already used in graph ${this.name}`);
    // Output names are global: build the renaming Identity outside any scope.
    const scopes = this.scopes.splice(0);
    try {
      const out = name && name !== v.name ? this.op('Identity', [v], {}, { name }) : v;
      this.outputs.push(out);
      return out;
    } finally {
      this.scopes.push(...scopes);
    }
  }

  /** Runs build with names prefixed by `prefix.` (PyTorch-style parameter names: `layer1.0.conv1.weight`). */
  scope<T>(prefix: string, build: () => T): T {
    this.scopes.push(prefix);
    try {
      return build();
    } finally {
      this.scopes.pop();
    }
  }

  /** The node that produced v's value (for annotating it), which must exist. */
  producerOf(v: Value): GraphNode {
    return this.producers.get(v.name) ?? fail(`${v.name} is not computed by a node`);
  }

  value(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw new Error(`no value named ${name} in graph ${this.name}`);
    return v;
  }

  hasValue(name: string): boolean {
    return this.values.has(name);
  }

  /** The node that computes name, or undefined for inputs and initialisers. */
  producer(name: string): GraphNode | undefined {
    return this.producers.get(name);
  }

  /** A name not used yet in this graph, in the current scope. */
  uniqueName(base: string): string {
    let name = this.scoped(base);
    while (this.values.has(name) || this.nodeNames.has(name)) name = this.scoped(`${base}_${++this.counter}`);
    return name;
  }

  /** `shareTensorData`: initialisers' raw bytes are views of the builder's tensors, not copies (see toTensorProto). */
  toModelProto(options: { producer?: string; docString?: string; shareTensorData?: boolean } = {}): ModelProto {
    const nodes = this.withoutRenamingIdentities();
    return {
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: options.producer ?? 'medsyn',
      producerVersion: '0.1.0',
      docString: options.docString,
      metadataProps: [],
      trainingInfo: [],
      functions: [],
      graph: {
        name: this.name,
        node: nodes.map(nodeProto),
        initializer: [...this.initializers].map(([name, t]) =>
          toTensorProto(name, t, { share: options.shareTensorData }),
        ),
        sparseInitializer: [],
        input: this.inputs.map(valueInfo),
        output: this.outputs.map(valueInfo),
        valueInfo: [],
        quantizationAnnotation: [],
      },
    };
  }

  /**
   * The nodes with the Identity nodes that only rename a value into a graph output folded into
   * the value's producer (onnxruntime copies through such an Identity on every run).
   */
  private withoutRenamingIdentities(): GraphNode[] {
    const outputs = new Set(this.outputs.map((v) => v.name));
    const renames = new Map<string, string>();
    for (const node of this.nodes) {
      const source = node.inputs[0];
      if (
        node.op !== 'Identity' ||
        !source ||
        !outputs.has(node.outputs[0]!) ||
        outputs.has(source) ||
        renames.has(source)
      )
        continue;
      if (!this.producers.has(source)) continue;
      renames.set(source, node.outputs[0]!);
    }
    if (renames.size === 0) return this.nodes;
    // The producer writes the output name directly; every other consumer reads it under that name.
    const rename = (name: string) => (name ? (renames.get(name) ?? name) : name);
    return this.nodes
      .filter((node) => !(node.op === 'Identity' && renames.get(node.inputs[0]!) === node.outputs[0]))
      .map((node) =>
        node.outputs.some((o) => renames.has(o)) || node.inputs.some((i) => i && renames.has(i))
          ? { ...node, inputs: node.inputs.map(rename), outputs: node.outputs.map(rename) }
          : node,
      );
  }

  private define(name: string, dtype: DType, shape: Shape): Value {
    if (this.values.has(name)) throw new Error(`value name ${name} is already used in graph ${this.name}`);
    const value: Value = { name, dtype, shape: [...shape] };
    this.values.set(name, value);
    return value;
  }

  private scoped(name: string): string {
    return [...this.scopes, name].join('.');
  }
}

function valueInfo(v: Value): ValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: onnxTypeOf(v.dtype),
        shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** A Cast node as a NodeProto, for passes that edit a decoded model (float16 storage and conversion). */
export function castNodeProto(name: string, input: string, output: string, to: number): NodeProto {
  return {
    name,
    opType: 'Cast',
    domain: '',
    input: [input],
    output: [output],
    attribute: [attributeProto('to', { type: 'int', value: to })],
  };
}

function attributeProto(name: string, a: Attr): AttributeProto {
  const base: AttributeProto = {
    name,
    floats: [],
    ints: [],
    strings: [],
    tensors: [],
    graphs: [],
    sparseTensors: [],
    typeProtos: [],
  };
  switch (a.type) {
    case 'int':
      return { ...base, type: AttrType.INT, i: a.value };
    case 'float':
      return { ...base, type: AttrType.FLOAT, f: a.value };
    case 'string':
      return { ...base, type: AttrType.STRING, s: Buffer.from(a.value, 'utf8') };
    case 'ints':
      return { ...base, type: AttrType.INTS, ints: a.value };
    case 'floats':
      return { ...base, type: AttrType.FLOATS, floats: a.value };
    case 'strings':
      return { ...base, type: AttrType.STRINGS, strings: a.value.map((s) => Buffer.from(s, 'utf8')) };
    case 'tensor':
      return { ...base, type: AttrType.TENSOR, t: toTensorProto('', a.value) };
  }
}

function nodeProto(n: GraphNode): NodeProto {
  return {
    name: n.name,
    opType: n.op,
    domain: n.domain,
    input: [...n.inputs],
    output: [...n.outputs],
    attribute: Object.entries(n.attrs).map(([k, a]) => attributeProto(k, a)),
  };
}

function fail(message: string): never {
  throw new Error(message);
}
