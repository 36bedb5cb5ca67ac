import { GraphBuilder, encodeModel, type Tensor, type Value } from '@medsyn/onnx-graph';

/**
 * An inference-only ONNX model for serving: builds the model in inference mode and stores the
 * given (trained) parameters as its initialisers. Every parameter the model creates must be given,
 * with the same type and shape.
 */
export function exportInferenceModel(
  build: (g: GraphBuilder) => Record<string, Value>,
  parameters: Map<string, Tensor>,
  options: { name?: string; docString?: string } = {},
): Uint8Array {
  const g = new GraphBuilder(options.name ?? 'model');
  for (const [name, value] of Object.entries(build(g))) g.output(value, name);
  for (const [name, p] of g.parameters) {
    const trained = parameters.get(name);
    if (!trained) throw new Error(`no trained value for parameter ${name}`);
    if (trained.dtype !== p.initial.dtype || trained.dims.join(',') !== p.initial.dims.join(',')) {
      throw new Error(
        `parameter ${name} is ${trained.dtype}[${trained.dims}], the model expects ${p.initial.dtype}[${p.initial.dims}]`,
      );
    }
    g.initializers.set(name, trained);
  }
  return encodeModel(g.toModelProto({ docString: options.docString }));
}
