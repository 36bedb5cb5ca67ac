import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { encodeModel, type GraphBuilder } from '../src';

/** Runs the graph once on onnxruntime (CPU) and returns its outputs by name. */
export async function runGraph(g: GraphBuilder, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(encodeModel(g.toModelProto()));
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Runs ONNX's reference checker (full_check) on the graph; throws with its message when it refuses. */
export function checkWithOnnx(g: GraphBuilder, dir: string): void {
  const file = path.join(dir, `${g.name}.onnx`);
  fs.writeFileSync(file, encodeModel(g.toModelProto()));
  try {
    execFileSync('/usr/bin/python3', [path.join(__dirname, 'python', 'check_model.py'), file], { encoding: 'utf8' });
  } catch (error) {
    throw new Error(`onnx.checker refused ${g.name}: ${(error as { stdout?: string }).stdout ?? error}`);
  }
}
