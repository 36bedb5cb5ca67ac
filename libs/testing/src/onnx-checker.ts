import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from './temp';

/**
 * Runs ONNX's reference checker with full_check (strict shape inference too) on model bytes,
 * through Debian's python3-onnx; throws with the checker's message when it refuses the model.
 */
export function checkOnnxModel(model: Uint8Array, name = 'model'): void {
  const tmp = makeTempDir('onnx-check');
  const file = path.join(tmp.dir, `${name}.onnx`);
  fs.writeFileSync(file, model);
  try {
    execFileSync('/usr/bin/python3', [path.join(__dirname, '..', 'python', 'check_model.py'), file], {
      encoding: 'utf8',
    });
  } catch (error) {
    throw new Error(`onnx.checker refused ${name}: ${(error as { stdout?: string }).stdout ?? error}`);
  } finally {
    tmp.remove();
  }
}
