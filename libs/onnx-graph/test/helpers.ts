import * as ort from 'onnxruntime-node';
import { encodeModel, type GraphBuilder } from '../src';

/** Runs the graph once on onnxruntime (CPU) and returns its outputs by name. */
export async function runGraph(
  g: GraphBuilder,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()));
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}
