import { isStaticShape, type Attr, type GraphBuilder, type GraphNode, type Ops, type Value } from '@medsyn/onnx-graph';

/** What a gradient rule gets: the node, its inputs and outputs, and the gradients of its outputs. */
export class GradContext {
  constructor(
    readonly g: GraphBuilder,
    readonly o: Ops,
    readonly node: GraphNode,
    readonly inputs: readonly (Value | undefined)[],
    readonly outputs: readonly Value[],
    /** Gradient of each output; undefined where none flows back. */
    readonly dy: readonly (Value | undefined)[],
    private readonly wanted: readonly boolean[],
  ) {}

  /** Input i, which must be present. */
  x(i: number): Value {
    return this.inputs[i] ?? this.fail(`input ${i} is missing`);
  }

  /** Output i. */
  y(i = 0): Value {
    return this.outputs[i]!;
  }

  /** Gradient of output i, zeros when none flows back. */
  dyOrZeros(i = 0): Value {
    return this.dy[i] ?? this.o.zerosLike(this.y(i));
  }

  /** Whether the gradient of input i is needed. */
  needs(i: number): boolean {
    return this.wanted[i] ?? false;
  }

  int(name: string, fallback: number): number {
    const a: Attr | undefined = this.node.attrs[name];
    return a && a.type === 'int' ? a.value : fallback;
  }

  float(name: string, fallback: number): number {
    const a = this.node.attrs[name];
    return a && a.type === 'float' ? a.value : fallback;
  }

  ints(name: string): number[] | undefined {
    const a = this.node.attrs[name];
    return a && a.type === 'ints' ? a.value : undefined;
  }

  string(name: string, fallback: string): string {
    const a = this.node.attrs[name];
    return a && a.type === 'string' ? a.value : fallback;
  }

  /** Input i's value when it is a build-time constant (axes, shapes, pads...). */
  constantInts(i: number): number[] | undefined {
    const v = this.inputs[i];
    const t = v ? this.g.constantValue(v) : undefined;
    return t ? Array.from(t.data as ArrayLike<number | bigint>, Number) : undefined;
  }

  scalar(value: number, like: Value): Value {
    return this.o.scalar(like.dtype, value);
  }

  /** v broadcast to target's shape (static when known, else through Shape(target) at run time). */
  expandTo(v: Value, target: Value): Value {
    return isStaticShape(target.shape)
      ? this.o.expand(v, target.shape as number[])
      : this.o.expand(v, this.o.shape(target), target.shape);
  }

  /** v reshaped to target's shape. */
  reshapeTo(v: Value, target: Value): Value {
    if (sameShape(v.shape, target.shape)) return v;
    return isStaticShape(target.shape)
      ? this.o.reshape(v, target.shape as number[])
      : this.o.reshape(v, this.o.shape(target), target.shape);
  }

  /**
   * Sums a gradient over the axes along which target was broadcast, giving target's shape:
   * leading axes target lacks, and axes where target has size 1 and the gradient does not.
   */
  unbroadcast(grad: Value, target: Value): Value {
    if (sameShape(grad.shape, target.shape)) return grad;
    const lead = grad.shape.length - target.shape.length;
    if (lead < 0) this.fail(`gradient of rank ${grad.shape.length} cannot reduce to rank ${target.shape.length}`);
    const kept = target.shape.flatMap((d, i) => (d === 1 && grad.shape[i + lead] !== 1 ? [i + lead] : []));
    let out = grad;
    if (kept.length) out = this.o.reduceSum(out, kept, true);
    if (lead > 0)
      out = this.o.reduceSum(
        out,
        Array.from({ length: lead }, (_, i) => i),
        false,
      );
    return out;
  }

  fail(message: string): never {
    throw new Error(`gradient of ${this.node.op} node ${this.node.name}: ${message}`);
  }
}

export const sameShape = (a: readonly unknown[], b: readonly unknown[]): boolean =>
  a.length === b.length && a.every((d, i) => d === b[i]);
