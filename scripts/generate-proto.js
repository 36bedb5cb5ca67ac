#!/usr/bin/env node
// Generates, with the locally installed buf and ts-proto (one command, no network):
// - the TypeScript contracts and the descriptor set that server reflection serves, from proto/;
// - the ONNX schema (ModelProto and friends), from third_party/onnx.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const buf = path.join(root, 'node_modules/.bin/buf');
const contracts = path.join(root, 'libs/proto/src/gen');
const onnx = path.join(root, 'libs/onnx-graph/src/gen');

for (const out of [contracts, onnx]) {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
}
execFileSync(buf, ['generate', '--template', 'buf.gen.yaml'], { cwd: root, stdio: 'inherit' });
execFileSync(buf, ['build', 'proto', '--as-file-descriptor-set', '-o', path.join(contracts, 'descriptor-set.binpb')], {
  cwd: root,
  stdio: 'inherit',
});
execFileSync(buf, ['generate', '--template', 'buf.gen.onnx.yaml'], { cwd: root, stdio: 'inherit' });
console.log(`generated ${path.relative(root, contracts)} and ${path.relative(root, onnx)}`);
