// Writes a random-weight model with RoentGen-v2's architecture (SD 2.1-base: 865M-parameter
// UNet, 340M text encoder, full VAE decoder, 512 px) in the optimum ONNX layout, weights in
// model.onnx_data files; 5 GB (float32) + 2.5 GB (float16) on disk, ~100 s and 5 GiB of memory:
//   node --conditions=medsyn-source --import tsx libs/diffusion/scripts/build-roentgen-size-model.ts [--float32 DIR] [--float16 DIR] [--tiny]
// Both directories hold the same weights (the float16 copy converted from the float32 one).
// Prints the parameter counts as JSON.
import * as path from 'node:path';
import { buildSdModels, ROENTGEN_V2_ARCHITECTURE, TINY_SD2_ARCHITECTURE, type SdModelTarget } from '../src';

const args = process.argv.slice(2);
const targets: SdModelTarget[] = [];
for (const dtype of ['float32', 'float16'] as const) {
  const at = args.indexOf(`--${dtype}`);
  if (at >= 0 && args[at + 1]) targets.push({ dir: path.resolve(args[at + 1]!), dtype });
}
if (targets.length === 0) {
  process.stderr.write('usage: build-roentgen-size-model.ts [--float32 DIR] [--float16 DIR] [--tiny]\n');
  process.exit(2);
}
const started = process.hrtime.bigint();
const summary = buildSdModels(targets, {
  architecture: args.includes('--tiny') ? TINY_SD2_ARCHITECTURE : ROENTGEN_V2_ARCHITECTURE,
});
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
process.stdout.write(
  `${JSON.stringify({ ...summary, build_seconds: Math.round(seconds * 10) / 10, peak_rss_bytes: process.resourceUsage().maxRSS * 1024 })}\n`,
);
