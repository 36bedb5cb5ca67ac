// Writes the tiny test model (random weights, exact Stable Diffusion ONNX export layout):
//   node --conditions=medsyn-source --import tsx libs/diffusion/scripts/build-tiny-model.ts OUT_DIR [--fp16]
// --fp16 gives fp16 inputs/outputs, int64 token ids and an int64 [1] timestep, as optimum exports them.
import * as path from 'node:path';
import { buildTinyModel } from '../src';

const [out, ...flags] = process.argv.slice(2);
if (!out) {
  process.stderr.write('usage: build-tiny-model.ts OUT_DIR [--fp16]\n');
  process.exit(2);
}
const fp16 = flags.includes('--fp16');
const dir = buildTinyModel(
  path.resolve(out),
  fp16 ? { dtype: 'float16', idsDtype: 'int64', timestep: 'int64-one' } : {},
);
process.stdout.write(`${dir}\n`);
